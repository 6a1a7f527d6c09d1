"""The transmitter listens to the revocation announcements (``sessions.flows.revocation``):
every session the one path revokes becomes a CAEP 1.0 session-revoked SET (§3.1), every
credential change a credential-change SET (§3.3), for the receivers that asked for them.
The deliveries are rows of the revoking transaction: a rollback sends nothing."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from device_health.signals import compliance_changed
from sessions.flows.revocation import credential_change, session_revoked

from . import transmitter
from .models import SsfReceiver


def _anyone_listening() -> bool:
    return SsfReceiver.objects.filter(enabled=True).exists()


@receiver(session_revoked, dispatch_uid="shared_signals.session_revoked")
def on_session_revoked(sender: Any, session: Any, reason: str, initiator: str, details: dict[str, Any],
                       now: Any, **kwargs: Any) -> None:
    if not _anyone_listening():
        return
    transmitter.emit_session_revoked(session, reason_admin=reason, initiating_entity=str(initiator),
                                     txn=details.get("ssf_txn") or None)


@receiver(credential_change, dispatch_uid="shared_signals.credential_change")
def on_credential_change(sender: Any, user: Any, credential: str, change: str, initiator: str, reason: str,
                         friendly_name: str, now: Any, **kwargs: Any) -> None:
    if not _anyone_listening():
        return
    transmitter.emit_credential_change(user, credential_type=str(credential), change_type=str(change),
                                       reason_admin=reason, friendly_name=friendly_name,
                                       initiating_entity=str(initiator))


@receiver(compliance_changed, dispatch_uid="shared_signals.compliance_changed")
def on_compliance_changed(sender: Any, device: Any, previous_status: str, current_status: str, reason_admin: str,
                          **kwargs: Any) -> None:
    transmitter.emit_device_compliance_change(device, previous_status=previous_status,
                                              current_status=current_status, reason_admin=reason_admin)
