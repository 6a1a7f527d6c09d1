"""The user's signed-in browser sessions: indexed at login, listed, signed out one by one.

Django's session store cannot be searched by user, so ``authstate.establish``/``add_methods``
call :func:`remember` with the (new) session key. Signing out deletes the session from the
store, so the cookie held by that browser stops working at its next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from core import crypto
from core.events import EventType, client_ip, record
from sessions.flows.revocation import Reason
from sessions.flows.tokens import revoke_browser_login

from .. import authstate
from ..authstate import AuthState, auth_state_saved
from ..models import BrowserSession, User


def _store() -> Any:
    return import_module(settings.SESSION_ENGINE).SessionStore


def _key_hash(key: str) -> str:
    return crypto.token_hash(f"session:{key}")


def remember(
    request: HttpRequest, user: User, state: AuthState, old_key: str | None = None, now: datetime | None = None
) -> BrowserSession:
    """Record (or re-key) the current session after a login or step-up."""
    moment = now or timezone.now()
    if request.session.session_key is None:
        request.session.save()
    key = request.session.session_key or ""
    row = None
    if old_key:
        row = BrowserSession.objects.filter(key_hash=_key_hash(old_key), user=user, ended_at__isnull=True).first()
    if row is None:
        row = BrowserSession(user=user, created_at=moment)
    row.sid = state.sid
    row.key_hash = _key_hash(key)
    row.key_encrypted = crypto.encrypt(key.encode())
    row.amr = state.amr
    row.ip_address = client_ip(request)
    row.user_agent = request.META.get("HTTP_USER_AGENT", "")[:300]
    row.last_auth_at = moment
    row.save()
    return row


@receiver(auth_state_saved, dispatch_uid="accounts.remember_browser_session")
def _auth_state_saved(sender: Any, request: HttpRequest, user: Any, state: AuthState, old_key: str | None,
                      now: datetime, **kwargs: Any) -> None:
    remember(request, user, state, old_key=old_key, now=now)


@dataclass(frozen=True)
class SessionView:
    row: BrowserSession
    is_current: bool


def list_for(request: HttpRequest, user: User) -> list[SessionView]:
    """Open sessions of ``user`` still present in the store; the current one flagged."""
    store = _store()()
    current_hash = _key_hash(request.session.session_key or "")
    result = []
    for row in BrowserSession.objects.open().filter(user=user):
        key = _decrypt(row)
        if key is None or not store.exists(key):
            row.end()
            continue
        result.append(SessionView(row=row, is_current=row.key_hash == current_hash))
    return result


def _decrypt(row: BrowserSession) -> str | None:
    try:
        return crypto.decrypt(row.key_encrypted).decode()
    except crypto.DecryptionError:
        return None


def _delete(row: BrowserSession, now: datetime) -> None:
    key = _decrypt(row)
    if key:
        _store()().delete(key)
    row.end(now)
    revoke_browser_login(row.sid, Reason.BROWSER_SIGNED_OUT, now=now)


def sign_out(request: HttpRequest, user: User, session_id: int, now: datetime | None = None) -> bool:
    """Sign out one of the user's other sessions (the current one uses the logout page)."""
    moment = now or timezone.now()
    row = BrowserSession.objects.open().filter(user=user, pk=session_id).first()
    if row is None or row.key_hash == _key_hash(request.session.session_key or ""):
        return False
    _delete(row, moment)
    record(EventType.SESSION_BROWSER_SIGNED_OUT, user=user, request=request, browser_session=row.pk, sid=row.sid)
    return True


def sign_out_others(request: HttpRequest | None, user: User, reason: str, now: datetime | None = None) -> int:
    """Sign out every session of ``user`` except the current one (every one without a request)."""
    moment = now or timezone.now()
    session = getattr(request, "session", None)
    current_hash = _key_hash(session.session_key or "") if session is not None else ""
    count = 0
    for row in BrowserSession.objects.open().filter(user=user).exclude(key_hash=current_hash):
        _delete(row, moment)
        count += 1
    if count:
        record(EventType.SESSION_BROWSER_SIGNED_OUT, user=user, request=request, reason=reason, count=count)
    return count


def mark_ended(request: HttpRequest, now: datetime | None = None) -> None:
    """Mark the current browser session's row ended (the account page stops listing it)."""
    key = request.session.session_key
    if key:
        BrowserSession.objects.open().filter(key_hash=_key_hash(key)).update(ended_at=now or timezone.now())


def sign_out_current(request: HttpRequest) -> None:
    """This browser signs out: its row ends, the app sessions born from it are revoked, and
    Django's session is flushed (the logout page, the admin's, and ``prompt=select_account``);
    recorded as ``logout``."""
    user = request.user if request.user.is_authenticated else None
    revoked = end_current(request)
    logout(request)
    if user is not None:
        record(EventType.LOGOUT, user=user, request=request, revoked=revoked)


def end_current(request: HttpRequest, now: datetime | None = None) -> int:
    """Mark the current session ended (called just before logout flushes it); how many app
    sessions born from it were revoked."""
    mark_ended(request, now)
    state = authstate.current(request)
    if state is not None:
        return revoke_browser_login(state.sid, Reason.LOGOUT, now=now)
    return 0
