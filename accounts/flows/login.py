"""Password login: throttled, timing-equalised, every decision a security event."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.http import HttpRequest

from idp.events import client_ip, record

from .. import authstate, pending, throttle
from . import policy

GENERIC_FAILURE = "The username or password is not correct, or sign-in is temporarily blocked. Try again later."


class LoginRefused(Exception):
    """Password login failed; ``message`` is safe to show (reveals nothing about the account)."""

    def __init__(self, reason: str):
        super().__init__(GENERIC_FAILURE)
        self.reason = reason
        self.message = GENERIC_FAILURE


def check_password_login(request: HttpRequest, username: str, password: str) -> Any:
    """Return the user whose password matches, or raise ``LoginRefused``."""
    ip = client_ip(request)
    if throttle.is_locked(username, ip):
        record("login.password", outcome="denied", reason="throttled", request=request, username=username)
        raise LoginRefused("throttled")
    # ModelBackend hashes a dummy password for unknown users, so timing reveals nothing.
    user = authenticate(request, username=username, password=password)
    if user is None:
        throttle.register_failure(username, ip)
        record("login.password", outcome="failure", reason="bad_credentials", request=request, username=username)
        raise LoginRefused("bad_credentials")
    throttle.reset(username)
    record("login.password", outcome="success", user=user, request=request)
    return user


def after_first_factor(request: HttpRequest, user: Any, amr: list[str], wanted_acr: str) -> policy.Decision:
    """Decide what a correct first factor leads to (policy.decide).

    When a second factor is due the login stays pending (no session yet); otherwise the
    session is established now: either done, or on to enrollment of a required factor.
    """
    decision = policy.decide(user, amr, wanted_acr)
    if decision.step == policy.VERIFY:
        pending.start(request, user, amr, mode="login")
        return decision
    pending.clear(request)
    state = authstate.establish(request, user, amr)
    record("login.completed", user=user, request=request, amr=state.amr, acr=state.acr, session_id=state.sid)
    return decision


def begin_step_up(request: HttpRequest, user: Any) -> None:
    """The signed-in user must add a factor to this session (acr_values / policy)."""
    pending.start(request, user, [], mode="stepup")
    record("login.step_up", outcome="required", user=user, request=request)
