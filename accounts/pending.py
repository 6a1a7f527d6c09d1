"""A login half done: the first factor passed (or a step-up began), a second factor is due.

Kept in the server-side session under ``vigil_pending`` and never treated as a login:
``request.user`` stays whoever was signed in before (possibly nobody).

``mode`` is ``login`` (complete with ``authstate.establish``) or ``stepup`` (the signed-in
user adds a factor to the same session with ``authstate.add_methods``).

It keeps the user's session hash (Django's ``get_session_auth_hash``, an HMAC of the password
hash) from its start: a password changed meanwhile (by the user elsewhere, or an admin) ends
it, recorded, as Django ends the signed-in sessions then. Otherwise the old password plus a
second factor would still sign in for up to ``ACCOUNTS_PENDING_LOGIN_SECONDS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from core.events import EventType, Outcome, record

from .app_settings import app_settings

SESSION_KEY = "vigil_pending"


class Ended(StrEnum):
    """Why a pending sign-in ended before its second step (the event's ``reason``)."""

    PASSWORD_CHANGED = "password_changed"


@dataclass(frozen=True)
class Pending:
    user_id: int
    amr: list[str]
    mode: str
    expires: int
    password_mark: str

    def user(self) -> Any:
        from django.contrib.auth import get_user_model

        return get_user_model().objects.filter(pk=self.user_id, is_active=True).first()


def start(request: HttpRequest, user: Any, amr: list[str], mode: str, now: datetime | None = None) -> Pending:
    moment = now or timezone.now()
    pending = Pending(
        user_id=user.pk,
        amr=list(amr),
        mode=mode,
        expires=int(moment.timestamp()) + app_settings.PENDING_LOGIN_SECONDS,
        password_mark=user.get_session_auth_hash(),
    )
    request.session[SESSION_KEY] = {"uid": pending.user_id, "amr": pending.amr, "mode": mode, "exp": pending.expires,
                                    "pwh": pending.password_mark}
    return pending


def get(request: HttpRequest, now: datetime | None = None) -> Pending | None:
    data = request.session.get(SESSION_KEY)
    if not data:
        return None
    try:
        pending = Pending(
            user_id=int(data["uid"]), amr=list(data["amr"]), mode=str(data["mode"]), expires=int(data["exp"]),
            password_mark=str(data["pwh"]),
        )
    except (KeyError, TypeError, ValueError):
        clear(request)
        return None
    moment = now or timezone.now()
    if moment.timestamp() >= pending.expires:
        clear(request)
        return None
    if pending.mode == "stepup" and getattr(request.user, "pk", None) != pending.user_id:
        clear(request)
        return None
    if _password_changed(request, pending):
        return None
    return pending


def _password_changed(request: HttpRequest, pending: Pending) -> bool:
    """Whether the user's password changed since ``pending`` began (then it ends, recorded)."""
    user = pending.user()
    if user is None or constant_time_compare(user.get_session_auth_hash(), pending.password_mark):
        return False
    clear(request)
    record(EventType.LOGIN_SECOND_FACTOR, outcome=Outcome.DENIED, reason=Ended.PASSWORD_CHANGED, user=user,
           request=request, mode=pending.mode)
    return True


def clear(request: HttpRequest) -> None:
    request.session.pop(SESSION_KEY, None)
