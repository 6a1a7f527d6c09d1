"""Step-up: a risky session must be re-authorized with MFA (docs/risk.md).

``require_step_up`` marks the session ``step_up`` (its next refresh fails with
``invalid_grant``, see ``idp/oauth/grants/refresh_token.py``) and opens a ``StepUpDemand``
for the user at that client. ``acr_demanded_for`` is what the authorization endpoint asks
(``idp.flows.authorize.required_acr``): while a demand is open the next authorization
demands ``urn:vigil:acr:mfa`` (OIDC Core §3.1.2.1 ``acr_values`` semantics, raised by us).

A demand is answered by a sign-in made after it, decided by identity, never by clocks: each
sign-in has a random login id (``accounts.authstate.AuthState.login_id``, new at every
sign-in, kept by a further factor), and when it completes it answers the demands then open
(``answer_open_demands``, a ``StepUpAnswer`` per demand). Codes and device authorizations
carry the login id of the sign-in that produced them, and so does the family they start;
a new family meets an open demand only if its sign-in answered it and its ``acr`` reaches
the demand's (``risk.policy.unmet_demand``). Comparing ``auth_time`` with the demand's
``created_at`` could be fooled by two servers whose clocks differ, or a sign-in in the same
second: a sign-in from before the risk would pass, or a real answer be refused. The code
exchange whose family meets the demands clears them (``clear_satisfied``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from core.acr import ACR_MFA, acr_satisfies
from core.events import EventType, record
from core.sql import Statement
from sessions.models import DeviceSession, SessionStatus

from .models import StepUpAnswer, StepUpDemand

# One statement: the sign-in answers the demands of its user committed when it runs (and not
# twice). The user's key is prepared as a key (``id``).
_ANSWER_OPEN = Statement(
    StepUpAnswer,
    "INSERT INTO {table} (demand_id, login_id, created_at) SELECT d.id, %s, %s FROM "
    f"{StepUpDemand._meta.db_table} d WHERE d.user_id = %s AND d.cleared_at IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM {table} a WHERE a.demand_id = d.id AND a.login_id = %s)",
    ["login_id", "created_at", "id", "login_id"],
)

# The open demands of a user at a client, newest first, each with whether the sign-in named
# answered it (an empty login id answers nothing). The login id is prepared by its own field,
# the keys as keys (``id``).
_OPEN = Statement(
    StepUpAnswer,
    "SELECT d.acr, EXISTS (SELECT 1 FROM {table} a WHERE a.demand_id = d.id AND a.login_id = %s "
    f"AND a.login_id <> '') FROM {StepUpDemand._meta.db_table} d "
    "WHERE d.user_id = %s AND d.client_id = %s AND d.cleared_at IS NULL ORDER BY d.created_at DESC, d.id DESC",
    ["login_id", "id", "id"],
)


def acr_demanded_for(user: Any, client: Any) -> str | None:
    """The ``acr`` an open step-up demand requires of ``user`` at ``client``, or None."""
    if getattr(user, "pk", None) is None or getattr(client, "pk", None) is None:
        return None
    demand = StepUpDemand.objects.open().filter(user=user, client=client).order_by("-created_at").first()
    return demand.acr if demand is not None else None


def open_demands(user: Any, client: Any, login_id: str) -> list[tuple[str, bool]]:
    """``(acr, answered)`` of each open demand of ``user`` at ``client``, newest first, in one
    query: ``answered`` when the sign-in ``login_id`` answered it (``answer_open_demands``; a
    sign-in without a login id answered none). Every code exchange and device grant asks, so
    the statement is written once, not compiled by the ORM per request (issue 19)."""
    if getattr(user, "pk", None) is None or getattr(client, "pk", None) is None:
        return []
    return [(acr, bool(answered)) for acr, answered in _OPEN.rows(login_id, user.pk, client.pk)]


def unanswered(login_id: str, user: Any, client: Any) -> bool:
    """Whether an open demand of ``user`` at ``client`` was not answered by the sign-in
    ``login_id``: however strong, that sign-in is not known to have happened after the risk,
    so every page that starts a family (``/authorize``, ``/device``) asks for a new sign-in."""
    return any(not answered for _, answered in open_demands(user, client, login_id))


def answer_open_demands(user: Any, login_id: str, *, now: datetime | None = None) -> int:
    """The sign-in ``login_id`` of ``user`` answers every demand open now (at every client); how
    many. Called once per new sign-in (``accounts.authstate.signed_in``), never for a further
    factor on the same sign-in. One ``INSERT ... SELECT``: the demands it answers are those
    committed when that statement ran, so each opened before this sign-in completed; a demand
    opened later has no answer by it. No clock (this server's or another's) is compared."""
    if getattr(user, "pk", None) is None or not login_id:
        return 0
    return max(_ANSWER_OPEN.run(login_id, now or timezone.now(), user.pk, login_id), 0)


def demand(user: Any, client: Any, reason: str, *, sid: str = "", now: datetime | None = None) -> StepUpDemand:
    """Open (or keep) a demand that the next authorization of ``user`` at ``client`` reaches MFA."""
    existing = StepUpDemand.objects.open().filter(user=user, client=client).first()
    if existing is not None:
        return existing
    return StepUpDemand.objects.create(
        user=user, client=client, acr=ACR_MFA, reason=reason[:80], session_sid=sid, created_at=now or timezone.now()
    )


def require_step_up(session: DeviceSession, reason: str, *, now: datetime | None = None, **details: Any) -> bool:
    """Mark an active session ``step_up`` and demand MFA at the next authorization. Returns
    whether the session changed (a revoked session stays revoked; the demand opens anyway)."""
    moment = now or timezone.now()
    changed = DeviceSession.objects.filter(pk=session.pk, status=SessionStatus.ACTIVE).update(
        status=SessionStatus.STEP_UP_REQUIRED, status_reason=reason[:80]
    )
    if changed:
        session.status, session.status_reason = SessionStatus.STEP_UP_REQUIRED, reason[:80]
        record(EventType.SESSION_STEP_UP_REQUIRED, reason=reason, user=session.user, client_id=session.client.client_id,
               session_id=session.sid, **details)
    demand(session.user, session.client, reason, sid=session.sid, now=moment)
    return bool(changed)


def satisfies_demand(acr: str) -> bool:
    return bool(acr) and acr_satisfies(acr, ACR_MFA)


def clear_satisfied(session: DeviceSession, *, now: datetime | None = None) -> int:
    """Close the open demands of the session's user and client that its sign-in answered
    (``session.login_id``, see ``answer_open_demands``) and its ``acr`` meets."""
    if not satisfies_demand(session.acr) or not session.login_id:
        return 0
    moment = now or timezone.now()
    cleared = 0
    for item in StepUpDemand.objects.open().filter(user=session.user, client=session.client,
                                                   answers__login_id=session.login_id):
        if acr_satisfies(session.acr, item.acr):
            item.clear(session.sid, moment)
            cleared += 1
            record(
                EventType.RISK_STEP_UP_CLEARED,
                reason=item.reason,
                user=session.user,
                client_id=session.client.client_id,
                session_id=session.sid,
                acr=session.acr,
                demanded_acr=item.acr,
                demand=item.pk,
            )
    return cleared
