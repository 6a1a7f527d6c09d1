"""The second step of a login, or a step-up: TOTP, recovery code or passkey.

Attempts are throttled per account and per IP (shared with password failures' IP budget);
the refusal message is the same whatever went wrong.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest

from idp.events import client_ip, record

from .. import authstate, pending, throttle
from ..authstate import AuthState
from . import recovery, totp

GENERIC_FAILURE = "That code is not valid, or sign-in is temporarily blocked. Try again later."


class SecondFactorRefused(Exception):
    def __init__(self, reason: str):
        super().__init__(GENERIC_FAILURE)
        self.reason = reason
        self.message = GENERIC_FAILURE


def verify_code(
    request: HttpRequest, state: pending.Pending, method: str, code: str, now: datetime | None = None
) -> AuthState:
    """Check a TOTP (RFC 6238) or recovery code for the pending user and finish the login.

    Both prove possession of something other than the password: RFC 8176 ``otp``.
    """
    user = state.user()
    ip = client_ip(request)
    if user is None:
        raise SecondFactorRefused("no_user")
    if throttle.second_factor_locked(user.pk, ip):
        record("login.second_factor", outcome="denied", reason="throttled", user=user, request=request, method=method)
        raise SecondFactorRefused("throttled")
    ok = totp.verify(user, code) if method == "totp" else recovery.use(user, code) if method == "recovery" else False
    if not ok:
        throttle.register_second_factor_failure(user.pk, ip)
        record("login.second_factor", outcome="failure", reason="bad_code", user=user, request=request, method=method)
        raise SecondFactorRefused("bad_code")
    throttle.reset_second_factor(user.pk)
    if method == "recovery":
        record("factor.recovery_code.used", user=user, request=request, remaining=recovery.remaining(user))
    record("login.second_factor", user=user, request=request, method=method)
    return complete(request, state, user, ["otp"], now)


def complete(
    request: HttpRequest, state: pending.Pending, user: Any, methods: list[str], now: datetime | None = None
) -> AuthState:
    """Turn the pending login into a session (or add the factor to the current one)."""
    pending.clear(request)
    current = authstate.current(request)
    if state.mode == "stepup" and current is not None and current.user_id == user.pk:
        result = authstate.add_methods(request, methods, now)
        assert result is not None
        record("login.step_up", user=user, request=request, amr=result.amr, acr=result.acr, session_id=result.sid)
        return result
    result = authstate.establish(request, user, [*state.amr, *methods], now)
    record("login.completed", user=user, request=request, amr=result.amr, acr=result.acr, session_id=result.sid)
    return result
