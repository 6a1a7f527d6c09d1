"""The transmitter listens to the announcements, never to the audit table: every session
the one revocation path revokes (``sessions.flows.revocation``) becomes a CAEP 1.0
session-revoked SET (§3.1), every credential change a credential-change SET (§3.3), every
change of a device's compliance status (``attestation.health.signals``) a
device-compliance-change SET (§3.5), for the receivers that asked for them. The deliveries
are rows of the announcing transaction: a rollback sends nothing. Connected from
``IdpConfig.ready()``."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from attestation.health.signals import compliance_changed
from sessions.flows.revocation import credential_change, session_revoked


def _anyone_listening() -> bool:
    from .models import SsfReceiver

    return SsfReceiver.objects.filter(enabled=True).exists()


@receiver(session_revoked, dispatch_uid="idp.ssf.session_revoked")
def on_session_revoked(sender: Any, session: Any, reason: str, initiator: str, details: dict[str, Any],
                       now: Any, **kwargs: Any) -> None:
    if not _anyone_listening():
        return
    from .transmitter import emit_session_revoked

    emit_session_revoked(session, reason_admin=reason, initiating_entity=str(initiator),
                         txn=details.get("ssf_txn") or None)


@receiver(credential_change, dispatch_uid="idp.ssf.credential_change")
def on_credential_change(sender: Any, user: Any, credential: str, change: str, initiator: str, reason: str,
                         friendly_name: str, now: Any, **kwargs: Any) -> None:
    if not _anyone_listening():
        return
    from .transmitter import emit_credential_change

    emit_credential_change(user, credential_type=str(credential), change_type=str(change), reason_admin=reason,
                           friendly_name=friendly_name, initiating_entity=str(initiator))


@receiver(compliance_changed, dispatch_uid="idp.ssf.compliance_changed")
def on_compliance_changed(sender: Any, device: Any, previous_status: str, current_status: str, reason: str,
                          **kwargs: Any) -> None:
    from .transmitter import emit_device_compliance_change

    emit_device_compliance_change(device, previous_status=previous_status, current_status=current_status,
                                  reason_admin=reason)
