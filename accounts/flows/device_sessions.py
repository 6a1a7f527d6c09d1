"""The user's signed-in apps (``sessions.DeviceSession`` token families): list and revoke.

Revoking goes through the one path (``sessions.flows.revocation``): the family's refresh
and access tokens end with it, a ``session.revoked`` event is recorded and shared-signals
receivers hear of it.
"""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest

from sessions.flows import revocation
from sessions.models import DeviceSession

from ..models import User


def list_for(user: User) -> list[DeviceSession]:
    return list(
        DeviceSession.objects.active().filter(user=user).select_related("client", "device").order_by("-created_at")
    )


def revoke(
    user: User, session_id: int, reason: str, request: HttpRequest | None = None, now: datetime | None = None
) -> bool:
    """Revoke one live device session of ``user``; False if there is none with that id."""
    session = revocation.live_sessions_of(user).filter(pk=session_id).first()
    if session is None:
        return False
    return revocation.revoke_session(session, reason, now=now, request=request)


def revoke_all(user: User, reason: str, request: HttpRequest | None = None, now: datetime | None = None) -> int:
    """Revoke every live device session of ``user`` (password change, factor reset)."""
    return revocation.revoke_user_sessions(user, reason, request=request, now=now)
