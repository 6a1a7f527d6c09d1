"""What a received CAEP event does here, by the transmitter's policy (event type -> action):

- ``revoke``: revoke the matching sessions and their token families;
- ``step_up``: the matching sessions' next refresh fails with ``step_up_required``;
- ``suspend_device``: suspend the matching attested devices (``device_suspended``);
- ``record``: only the security event.

CAEP 1.0 §3.5: a device-compliance-change acts only when ``current_status`` is
``not-compliant``; a device becoming compliant again is recorded, never auto-reactivated.
Each action is one security event (``ssf.action``) besides the ones the flows record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attestation.flows.registry import suspend_device
from attestation.models import DeviceStatus
from core.events import EventType, Outcome, record
from sessions.flows.tokens import revoke_session
from sessions.models import DeviceSession, SessionStatus

from . import subjects
from .models import CaepEvent, ReceiverAction, SsfTransmitter


def _reason(event_type: str) -> str:
    return "ssf_" + event_type.rsplit("/", 1)[-1].replace("-", "_")


def chosen_action(transmitter: SsfTransmitter, event_type: str, event: dict[str, Any]) -> str:
    action = transmitter.action_for(event_type) or ReceiverAction.RECORD
    if event_type == CaepEvent.DEVICE_COMPLIANCE_CHANGE and event.get("current_status") != "not-compliant":
        return ReceiverAction.RECORD
    if event_type == CaepEvent.CREDENTIAL_CHANGE and not isinstance(event.get("change_type"), str):
        return ReceiverAction.RECORD
    return str(action)


def apply(
    transmitter: SsfTransmitter, event_type: str, event: dict[str, Any], claims: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Apply one event of a verified SET; returns a summary stored on the ``ReceivedSet``."""
    action = chosen_action(transmitter, event_type, event)
    match = subjects.resolve(claims["sub_id"], transmitter)
    context = {"ssf_transmitter": transmitter.name, "ssf_jti": claims["jti"], "ssf_txn": claims.get("txn", "")}
    reason = _reason(event_type)
    if action == ReceiverAction.REVOKE:
        changed = [s.sid for s in match.sessions if revoke_session(s, reason, now=now, **context)]
    elif action == ReceiverAction.STEP_UP:
        changed = [s.sid for s in match.sessions if require_step_up(s, reason, **context)]
    elif action == ReceiverAction.SUSPEND_DEVICE:
        changed = [d.key_id for d in match.devices if _suspend(d, reason, now)]
    else:
        changed = []
    summary = {"event": event_type, "action": str(action), "matched": not match.empty, "changed": changed}
    record(EventType.SSF_ACTION, outcome=Outcome.SUCCESS if changed else Outcome.INFO, reason=reason,
           **{**summary, **context})
    return summary


def require_step_up(session: DeviceSession, reason: str, **details: Any) -> bool:
    """Active -> step-up required, as a conditional update (a revoked session stays revoked)."""
    changed = DeviceSession.objects.filter(pk=session.pk, status=SessionStatus.ACTIVE).update(
        status=SessionStatus.STEP_UP_REQUIRED, status_reason=reason[:80]
    )
    if changed:
        record(EventType.SESSION_STEP_UP_REQUIRED, reason=reason, user=session.user, client_id=session.client.client_id,
               session_id=session.sid, **details)
    return bool(changed)


def _suspend(device: Any, reason: str, now: datetime) -> bool:
    if device.status != DeviceStatus.ACTIVE:
        return False
    suspend_device(device, reason=reason, now=now)
    return True
