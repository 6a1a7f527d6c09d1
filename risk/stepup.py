"""Step-up: a risky session must be re-authorized with MFA (docs/risk.md).

``require_step_up`` marks the session ``step_up`` (its next refresh fails with
``invalid_grant``, see ``idp/oauth/grants/refresh_token.py``) and opens a ``StepUpDemand``
for the user at that client. ``acr_demanded_for`` is what the authorization endpoint asks
(``idp.flows.authorize.required_acr``): while a demand is open the next authorization
demands ``urn:vigil:acr:mfa`` (OIDC Core §3.1.2.1 ``acr_values`` semantics, raised by us).
A code exchange whose authentication meets the demand clears it (``clear_satisfied``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from core.acr import ACR_MFA, acr_satisfies
from core.events import EventType, record
from sessions.models import DeviceSession, SessionStatus

from .models import StepUpDemand


def acr_demanded_for(user: Any, client: Any) -> str | None:
    """The ``acr`` an open step-up demand requires of ``user`` at ``client``, or None."""
    if getattr(user, "pk", None) is None or getattr(client, "pk", None) is None:
        return None
    demand = StepUpDemand.objects.open().filter(user=user, client=client).order_by("-created_at").first()
    return demand.acr if demand is not None else None


def open_demand(user: Any, client: Any) -> tuple[str | None, datetime | None]:
    """``(acr, since)`` of the open demands of ``user`` at ``client`` in one query: the acr the
    newest requires and when the oldest opened; ``(None, None)`` without any."""
    if getattr(user, "pk", None) is None or getattr(client, "pk", None) is None:
        return None, None
    demands = list(StepUpDemand.objects.open().filter(user=user, client=client).only("acr", "created_at"))
    if not demands:
        return None, None
    newest = max(demands, key=lambda d: d.created_at)
    return newest.acr, min(d.created_at for d in demands)


def open_since(user: Any, client: Any) -> datetime | None:
    """When the oldest open demand of ``user`` at ``client`` opened: an authentication from
    before then does not count (the risk arose after it), so the user must sign in again."""
    if getattr(user, "pk", None) is None or getattr(client, "pk", None) is None:
        return None
    first = StepUpDemand.objects.open().filter(user=user, client=client).order_by("created_at").first()
    return first.created_at if first is not None else None


def predates_open_demand(auth_time: int, user: Any, client: Any) -> bool:
    """Whether a sign-in at ``auth_time`` (Unix seconds) is older than the open demand of
    ``user`` at ``client``: it cannot meet it, however strong (the risk arose after it). Every
    page that starts a family asks (``/authorize``, ``/device``): a second factor passed
    before the risk would otherwise approve a new family past it."""
    return demand_predating(auth_time, user, client) is not None


def demand_predating(auth_time: int, user: Any, client: Any) -> datetime | None:
    """When the open demand that a sign-in at ``auth_time`` predates opened, or None (one query)."""
    since = open_since(user, client)
    return since if since is not None and auth_time < int(since.timestamp()) else None


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
    """Close the open demands of the session's user and client that its ``acr`` meets."""
    if not satisfies_demand(session.acr):
        return 0
    moment = now or timezone.now()
    cleared = 0
    for item in StepUpDemand.objects.open().filter(user=session.user, client=session.client):
        if acr_satisfies(session.acr, item.acr) and session.auth_time >= item.created_at:
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
