"""A login half done: the first factor passed (or a step-up began), a second factor is due.

Kept in the server-side session under ``vigil_pending`` and never treated as a login:
``request.user`` stays whoever was signed in before (possibly nobody).

``mode`` is ``login`` (complete with ``authstate.establish``) or ``stepup`` (the signed-in
user adds a factor to the same session with ``authstate.add_methods``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from .app_settings import app_settings

SESSION_KEY = "vigil_pending"


@dataclass(frozen=True)
class Pending:
    user_id: int
    amr: list[str]
    mode: str
    expires: int

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
    )
    request.session[SESSION_KEY] = {"uid": pending.user_id, "amr": pending.amr, "mode": mode, "exp": pending.expires}
    return pending


def get(request: HttpRequest, now: datetime | None = None) -> Pending | None:
    data = request.session.get(SESSION_KEY)
    if not data:
        return None
    try:
        pending = Pending(
            user_id=int(data["uid"]), amr=list(data["amr"]), mode=str(data["mode"]), expires=int(data["exp"])
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
    return pending


def clear(request: HttpRequest) -> None:
    request.session.pop(SESSION_KEY, None)
