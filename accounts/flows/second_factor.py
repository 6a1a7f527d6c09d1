"""The second step of a login, or a step-up: TOTP, recovery code or passkey.

TOTP and recovery codes are guessable, so attempts are throttled like passwords (per account
and device or source, progressive delays: ``accounts/throttle.py``) in buckets of their own;
a passkey cannot be guessed and is never throttled.
"""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy

from core.events import EventType, Outcome, record

from .. import authstate, pending, throttle
from ..authstate import AuthState
from ..models import User
from . import attempts, recovery, totp
from .attempts import throttled_message

GENERIC_FAILURE = gettext_lazy("That code is not valid.")
CODE_JUST_USED = gettext_lazy("That code was just used. Wait for the next code from your app.")



class SecondFactorRefused(Exception):
    def __init__(self, reason: attempts.Refusal, retry_after: int | None = None):
        if retry_after:
            self.message = throttled_message(retry_after)
        else:
            self.message = str(CODE_JUST_USED if reason is attempts.Refusal.CODE_REUSED else GENERIC_FAILURE)
        super().__init__(self.message)
        self.reason = reason
        self.retry_after = retry_after


def verify_code(
    request: HttpRequest, state: pending.Pending, method: str, code: str, now: datetime | None = None
) -> AuthState:
    """Check a TOTP (RFC 6238) or recovery code for the pending user and finish the login.

    Both prove possession of something other than the password: RFC 8176 ``otp``.
    """
    user = state.user()
    if user is None:
        raise SecondFactorRefused(attempts.Refusal.NO_USER)
    try:
        attempt = attempts.admit(
            request,
            throttle.Scope.SECOND_FACTOR,
            user.get_username(),
            EventType.LOGIN_SECOND_FACTOR,
            user=user,
            method=method,
        )
    except throttle.Throttled as refused:
        raise SecondFactorRefused(attempts.Refusal.THROTTLED, refused.retry_after) from None
    # The code spent and the session signed in, or neither: a failure midway (the database gone)
    # spends no recovery code and leaves no TOTP step used, so the retry is judged afresh.
    # The user's row first, with the lock signing in takes anyway to update it (last_login): a
    # set-up confirmation or a regeneration locks it before the app's or the codes' rows, and a
    # sign-in that locked those first then waited on it deadlocked against them (PostgreSQL).
    with attempts.judging(attempt), transaction.atomic():
        list(User.objects.select_for_update(no_key=True).filter(pk=user.pk).only("pk"))  # gone: no code is right
        ok = _check(user, method, code)
        reused = not ok and _just_used(user, method, code, now or timezone.now())
        result = _accepted(request, state, user, method, now) if ok else None
    if reused:
        _refuse_reused(request, attempt, user, method)
    if result is None:
        attempts.fail(
            request, attempt, EventType.LOGIN_SECOND_FACTOR, attempts.Refusal.BAD_CODE, user=user, method=method
        )
        raise SecondFactorRefused(attempts.Refusal.BAD_CODE)
    throttle.succeeded(attempt)
    return result


def _accepted(request: HttpRequest, state: pending.Pending, user: User, method: str, now: datetime | None) -> AuthState:
    if method == "recovery":
        record(EventType.FACTOR_RECOVERY_CODE_USED, user=user, request=request, remaining=recovery.remaining(user))
    record(EventType.LOGIN_SECOND_FACTOR, user=user, request=request, method=method)
    return complete(request, state, user, ["otp"], now)


def _just_used(user: User, method: str, code: str, now: datetime) -> bool:
    """The TOTP code the app's last sign-in step accepted moments ago, typed again: after a
    double click, or signed in again because that step's answer (and its session cookie) was
    lost. Refused, as a used code must be (RFC 6238 §5.2), but no guess."""
    device = totp.confirmed_device(user) if method == "totp" else None
    return device is not None and totp.accepted_moments_ago(device, code, now)


def _refuse_reused(request: HttpRequest, attempt: throttle.Attempt, user: User, method: str) -> NoReturn:
    """Recorded (``denied``, ``code_reused``) but not counted against the user: no delay grows."""
    throttle.abandoned(attempt)
    record(EventType.LOGIN_SECOND_FACTOR, outcome=Outcome.DENIED, reason=attempts.Refusal.CODE_REUSED, user=user,
           request=request, method=method)
    raise SecondFactorRefused(attempts.Refusal.CODE_REUSED)


def _check(user: User, method: str, code: str) -> bool:
    if method == "totp":
        return totp.verify(user, code)
    return method == "recovery" and recovery.use(user, code)


def complete(
    request: HttpRequest, state: pending.Pending, user: User, methods: list[str], now: datetime | None = None
) -> AuthState:
    """Turn the pending login into a session (or add the factor to the current one)."""
    pending.clear(request)
    current = authstate.current(request)
    if state.mode == "stepup" and current is not None and current.user_id == user.pk:
        result = authstate.add_methods(request, methods, now)
        assert result is not None
        record(
            EventType.LOGIN_STEP_UP, user=user, request=request, amr=result.amr, acr=result.acr, session_id=result.sid
        )
        return result
    result = authstate.establish(request, user, [*state.amr, *methods], now)
    record(EventType.LOGIN_COMPLETED, user=user, request=request, amr=result.amr, acr=result.acr, session_id=result.sid)
    return result
