"""Hook the transmitter to security decisions without touching the code that makes them:
every ``session.revoked`` security event (``sessions.flows.tokens.revoke_session``)
becomes a CAEP session-revoked SET for the receivers that asked for it."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

ADMIN_REASONS = {"revoked_by_admin"}
USER_REASONS = {"revoked_by_client", "logout", "rp_logout", "revoked_by_user"}


def initiating_entity(reason: str) -> str:
    """CAEP 1.0 §2 ``initiating_entity`` for one of our revocation reasons."""
    if reason in ADMIN_REASONS:
        return "admin"
    if reason in USER_REASONS:
        return "user"
    if reason.startswith("ssf_"):
        return "system"
    return "policy"


@receiver(post_save, sender="idp.SecurityEvent", dispatch_uid="idp.ssf.session_revoked")
def on_security_event(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if not created or instance.event_type != "session.revoked" or instance.outcome != "success":
        return
    if not instance.session_id:
        return
    from sessions.models import DeviceSession

    from .models import SsfReceiver
    from .transmitter import emit_session_revoked

    if not SsfReceiver.objects.filter(enabled=True).exists():
        return
    session = (
        DeviceSession.objects.select_related("user", "device").filter(sid=instance.session_id).first()
    )
    if session is None:
        return
    details = instance.details if isinstance(instance.details, dict) else {}
    emit_session_revoked(
        session, reason_admin=instance.reason, initiating_entity=initiating_entity(instance.reason),
        txn=details.get("ssf_txn") or None,
    )
