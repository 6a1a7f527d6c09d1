"""The user's signed-in apps (``sessions.DeviceSession`` token families): list and revoke.

Revoking sets the family's status; refresh and access tokens of a revoked family are
refused by the token endpoints (``RefreshToken.is_revoked`` / ``AccessToken.is_active``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from idp.events import record
from sessions.models import DeviceSession, SessionStatus


def list_for(user: Any) -> list[DeviceSession]:
    return list(
        DeviceSession.objects.active().filter(user=user).select_related("client", "device").order_by("-created_at")
    )


def revoke(
    user: Any, session_id: int, reason: str, request: HttpRequest | None = None, now: datetime | None = None
) -> bool:
    """Revoke one active device session of ``user``; False if there is none with that id."""
    moment = now or timezone.now()
    with transaction.atomic():
        updated = DeviceSession.objects.filter(pk=session_id, user=user, status=SessionStatus.ACTIVE).update(
            status=SessionStatus.REVOKED, revoked_at=moment, status_reason=reason[:80]
        )
    if updated:
        record("session.device.revoked", user=user, request=request, reason=reason, device_session=session_id)
    return bool(updated)


def revoke_all(user: Any, reason: str, request: HttpRequest | None = None, now: datetime | None = None) -> int:
    """Revoke every non-revoked device session of ``user`` (password change, factor reset)."""
    moment = now or timezone.now()
    with transaction.atomic():
        updated = (
            DeviceSession.objects.filter(user=user)
            .exclude(status=SessionStatus.REVOKED)
            .update(status=SessionStatus.REVOKED, revoked_at=moment, status_reason=reason[:80])
        )
    if updated:
        record("session.device.revoked", user=user, request=request, reason=reason, count=updated)
    return updated
