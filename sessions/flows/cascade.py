"""Revocation cascades (issue 5 §5): deactivating a user or revoking a device ends its
token families at once, so introspection and userinfo refuse their tokens immediately
rather than at the next refresh."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from ..models import DeviceSession
from .tokens import revoke_session


def revoke_user_sessions(user: Any, reason: str) -> int:
    return sum(
        int(revoke_session(s, reason))
        for s in DeviceSession.objects.active().filter(user=user).select_related("client", "user")
    )


def revoke_device_sessions(device_id: int, reason: str) -> int:
    """Called by ``attestation.flows.registry.revoke_device``."""
    return sum(
        int(revoke_session(s, reason))
        for s in DeviceSession.objects.exclude(status="revoked").filter(device_id=device_id).select_related("client", "user")
    )


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="vigil-user-deactivated")
def _user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if not created and not instance.is_active:
        revoke_user_sessions(instance, "user_deactivated")

