"""Risk evaluation on every token and userinfo request (issue 6, docs/risk.md).

Registered from ``DeviceSessionsConfig.ready()`` on the seam of ``core/policy.py``:
``evaluate_token_request`` runs inside each grant's issuing transaction,
``evaluate_resource_request`` when userinfo accepts an access token. Both judge the
request's address (impossible travel, new country), the session's device (integrity
downgrade, a streak of failed attestations) and, when a family starts, whether the device
is new for the user; the client's ``RiskPolicy`` maps what fired to an action.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from core.acr import ACR_MFA, acr_satisfies
from core.events import EventType, Outcome, client_ip, record
from core.policy import GrantType, PolicyDecision, ResourceContext, TokenContext
from core.resource_errors import ResourceError, ResourceErrorCode

from . import actions, geo, stepup, travel
from . import signals as detectors
from .errors import REVOKED_DESCRIPTION, STEP_UP_DESCRIPTION, RiskRefusedError, StepUpRequiredError
from .models import RiskAction
from .settings import risk_settings

USER_GRANTS = frozenset({GrantType.AUTHORIZATION_CODE, GrantType.REFRESH_TOKEN, GrantType.DEVICE_CODE})
# Grants that start a family: the user's sign-in is judged against open step-up demands, and
# the device is new for the user (RFC 8628's device is the one that receives the tokens).
NEW_FAMILY_GRANTS = frozenset({GrantType.AUTHORIZATION_CODE, GrantType.DEVICE_CODE})


@dataclass
class Assessment:
    """The signals of one request and the state updates that go with them."""

    signals: list[detectors.Signal] = field(default_factory=list)
    updates: list[Callable[[], None]] = field(default_factory=list)
    location: tuple[Any, geo.Location] | None = None  # (locked profile, where this request came from)
    now: datetime | None = None

    def persist(self, *, relock: bool = False) -> None:
        """Apply the updates; ``relock`` after a rollback (the profile row must be read again)."""
        if self.location is not None and self.now is not None:
            profile, here = self.location
            travel.remember(travel.locked_profile(profile.user_id) if relock else profile, here, self.now)
        for update in self.updates:
            update()


def assess(
    *,
    user: Any,
    session: Any,
    device: Any,
    ip: str | None,
    now: datetime,
    new_family: bool,
    attestation_failures: int | None = None,
) -> Assessment:
    """Run every request-time detector. Reads only (but for creating the user's profile row on
    its first located request): state updates wait in the assessment until ``persist()``."""
    found = Assessment(now=now)
    here = geo.locate(ip)
    if here is not None and user is not None:
        profile = travel.locked_profile(user)  # callers hold a transaction: the lock lasts until persist()
        for detector in (travel.travel_signal(profile, here, now), travel.country_signal(profile, here)):
            if detector is not None:
                found.signals.append(detector)
        found.location = (profile, here)
    if new_family and (fresh := detectors.new_device_signal(session)) is not None:
        found.signals.append(fresh)
    if session is not None and session.device_id is not None:
        if (streak := detectors.attestation_streak_signal(session, attestation_failures)) is not None:
            found.signals.append(streak)
    if device is not None:
        downgrade, previous, level = detectors.integrity_check(device)
        if downgrade is not None:
            found.signals.append(downgrade)
        if level is not None and level != previous:
            found.updates.append(lambda: detectors.remember_integrity(device, level, now))
    return found


def unattested(device: Any) -> bool:
    """A device enrolled by the fallback, without attestation (docs/unattested-devices.md)."""
    return device is not None and not getattr(device, "attested", True)


def unmet_demand(user: Any, client: Any, session: Any) -> str:
    """The ``acr`` of an open step-up demand that a new family does not meet, or "".

    A family meets a demand when the sign-in that produced its code or device approval
    (``session.login_id``) answered the demand, that is completed while it was open
    (``stepup.answer_open_demands``), and its ``acr`` reaches the demand's. Decided by the
    sign-in's identity, never by comparing ``session.auth_time`` with the demand's
    ``created_at``: those come from different servers' clocks, so a sign-in made before the
    risk could look newer (and bypass it) and a real answer older. A code issued before the
    demand, exchanged (or retried after a refused exchange) after it, never meets it, however
    strong its authentication; neither does a family without a login id."""
    login_id = getattr(session, "login_id", "") if session is not None else ""
    for demanded, answered in stepup.open_demands(user, client, login_id):
        if not (answered and acr_satisfies(session.acr, demanded)):
            return demanded
    return ""


def evaluate_token_request(context: TokenContext) -> PolicyDecision | None:
    """Token policy: refuse with ``invalid_grant`` when the policy's action is step-up or revoke,
    or when a code exchange does not meet an open step-up demand."""
    if not risk_settings.ENABLED or context.grant_type not in USER_GRANTS or context.user is None:
        return None
    session, request, now = context.session, context.request, context.now
    new_family = context.grant_type in NEW_FAMILY_GRANTS
    source = f"token:{context.grant_type}"
    found = assess(user=context.user, session=session, device=context.device, ip=client_ip(request), now=now,
                   new_family=new_family, attestation_failures=context.attestation_failures)
    unmet = unmet_demand(context.user, context.client, session) if new_family else ""
    if not found.signals and not unmet:
        found.persist()
        if new_family and session is not None:
            stepup.clear_satisfied(session, now=now)
        return None
    mfa_fresh = new_family and session is not None and stepup.satisfies_demand(session.acr)
    chosen = actions.plan(found.signals, context.client, mfa_satisfied=mfa_fresh,
                          unattested=unattested(context.device) or unattested(context.upgraded_from))
    # A refused code exchange rolls its new session back: act on the user at the client instead.
    target = None if new_family else session

    def leave_behind() -> None:
        found.persist(relock=True)
        actions.execute(chosen, user=context.user, client=context.client, session=target, request=request,
                        now=now, source=source)
        if unmet:
            record(EventType.RISK_STEP_UP_PENDING, outcome=Outcome.DENIED, reason="step_up_demand_unmet",
                   user=context.user, client_id=context.client.client_id, request=request, source=source,
                   demanded_acr=unmet, acr=getattr(session, "acr", ""))

    if chosen.refuses or unmet:
        description = REVOKED_DESCRIPTION if chosen.action == RiskAction.REVOKE else STEP_UP_DESCRIPTION
        raise RiskRefusedError(description, leave_behind)
    found.persist()
    actions.execute(chosen, user=context.user, client=context.client, session=session, request=request, now=now,
                    source=source)
    if new_family and session is not None:
        stepup.clear_satisfied(session, now=now)
    return PolicyDecision(reasons=[f"risk:{s.kind}" for s in found.signals])


def evaluate_resource_request(context: ResourceContext) -> None:
    """Resource policy (userinfo): a step-up answers RFC 9470 ``insufficient_user_authentication``,
    a revocation ``invalid_token``."""
    token = context.token
    session = getattr(token, "session", None)
    user = getattr(token, "user", None)
    if not risk_settings.ENABLED or user is None or session is None:
        return
    request: HttpRequest = context.request
    with transaction.atomic():
        found = assess(user=user, session=session, device=session.device if session.device_id else None,
                       ip=client_ip(request), now=context.now, new_family=False)
        found.persist()
        if not found.signals:
            return
        chosen = actions.plan(found.signals, session.client,
                              unattested=unattested(session.device if session.device_id else None))
        actions.execute(chosen, user=user, client=session.client, session=session, request=request,
                        now=context.now, source="resource:userinfo")
    if chosen.action == RiskAction.REVOKE:
        raise ResourceError(ResourceErrorCode.INVALID_TOKEN, REVOKED_DESCRIPTION)
    if chosen.action == RiskAction.STEP_UP:
        raise StepUpRequiredError(ACR_MFA)
