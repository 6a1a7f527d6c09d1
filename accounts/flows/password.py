"""Password change: the other browser sessions are signed out and app sessions revoked."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import update_session_auth_hash
from django.http import HttpRequest

from idp.events import record

from .. import authstate
from . import browser_sessions, device_sessions


def change(request: HttpRequest, user: Any, new_password: str) -> None:
    """Set the password; this session stays signed in (its key is rotated), others end."""
    user.set_password(new_password)
    user.save(update_fields=["password"])
    old_key = request.session.session_key
    update_session_auth_hash(request, user)  # rotates this session's key
    state = authstate.current(request)
    if state is not None:
        browser_sessions.remember(request, user, state, old_key=old_key)
    signed_out = browser_sessions.sign_out_others(request, user, reason="password_changed")
    revoked = device_sessions.revoke_all(user, "password_changed", request=request)
    record("password.changed", user=user, request=request, browser_sessions=signed_out, device_sessions=revoked)
