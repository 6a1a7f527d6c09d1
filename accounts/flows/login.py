"""Password login: throttled, timing-equalised, every decision a security event."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.http import HttpRequest
from django.utils.translation import gettext_lazy

from core.events import EventType, Outcome, record

from .. import authstate, pending, throttle
from ..models import User
from . import attempts, policy
from .attempts import throttled_message

GENERIC_FAILURE = gettext_lazy("The username or password is not correct.")



class LoginRefused(Exception):
    """Password login failed; ``message`` is safe to show (reveals nothing about the account:
    the delays apply to any name typed, existing or not). ``retry_after`` when throttled."""

    def __init__(self, reason: attempts.Refusal, retry_after: int | None = None):
        self.message = throttled_message(retry_after) if retry_after else str(GENERIC_FAILURE)
        super().__init__(self.message)
        self.reason = reason
        self.retry_after = retry_after


def check_password_login(request: HttpRequest, username: str, password: str) -> Any:
    """Return the user whose password matches, or raise ``LoginRefused``.

    Throttled per (account, device or source) with progressive delays (``accounts/throttle.py``):
    the decision, the basis the source was recognised on and any wait are in the events.
    """
    try:
        attempt = attempts.admit(
            request, throttle.Scope.PASSWORD, username, EventType.LOGIN_PASSWORD, username=username
        )
    except throttle.Throttled as refused:
        raise LoginRefused(attempts.Refusal.THROTTLED, refused.retry_after) from None
    # ModelBackend hashes a dummy password for unknown users, so timing reveals nothing.
    with attempts.judging(attempt):
        user = authenticate(request, username=username, password=password)
    if user is None:
        attempts.fail(request, attempt, EventType.LOGIN_PASSWORD, attempts.Refusal.BAD_CREDENTIALS, username=username)
        raise LoginRefused(attempts.Refusal.BAD_CREDENTIALS)
    throttle.succeeded(attempt)
    record(EventType.LOGIN_PASSWORD, outcome=Outcome.SUCCESS, user=user, request=request,
           basis=str(attempt.source.basis))
    return user


def after_first_factor(request: HttpRequest, user: User, amr: list[str], wanted_acr: str) -> policy.Decision:
    """Decide what a correct first factor leads to (policy.decide).

    When a second factor is due the login stays pending (no session yet); otherwise the
    session is established now: either done, or on to enrollment of a required factor.
    """
    decision = policy.decide(user, amr, wanted_acr)
    if decision.step == policy.VERIFY:
        pending.start(request, user, amr, mode="login")
        return decision
    pending.clear(request)
    state = authstate.establish(request, user, amr, complete=decision.step != policy.ENROLL)
    record(EventType.LOGIN_COMPLETED, user=user, request=request, amr=state.amr, acr=state.acr, session_id=state.sid)
    return decision


def begin_step_up(request: HttpRequest, user: User) -> None:
    """The signed-in user must add a factor to this session (acr_values / policy)."""
    pending.start(request, user, [], mode="stepup")
    record(EventType.LOGIN_STEP_UP, outcome=Outcome.REQUIRED, user=user, request=request)
