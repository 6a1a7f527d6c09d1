"""Failure counters per account and per IP in the shared cache (works across processes).

Only failures count; success resets the account counter. A locked account gets the same
message as a wrong password so attackers learn nothing about which accounts exist.
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache

from idp.counters import incr_in_window

from .app_settings import app_settings


def _key(kind: str, value: str) -> str:
    return f"vigil:fail:{kind}:{hashlib.sha256(value.lower().encode()).hexdigest()}"


def is_locked(username: str, ip: str | None) -> bool:
    if cache.get(_key("acct", username), 0) >= app_settings.LOGIN_FAILURES_PER_ACCOUNT:
        return True
    return bool(ip) and cache.get(_key("ip", ip or ""), 0) >= app_settings.LOGIN_FAILURES_PER_IP


def _incr(key: str) -> int:
    return incr_in_window(key, app_settings.LOGIN_FAILURE_WINDOW)


def register_failure(username: str, ip: str | None) -> None:
    _incr(_key("acct", username))
    if ip:
        _incr(_key("ip", ip))


def reset(username: str) -> None:
    cache.delete(_key("acct", username))


def _user_key(user_pk: int) -> str:
    return _key("mfa", str(user_pk))


def second_factor_locked(user_pk: int, ip: str | None) -> bool:
    """Second-factor attempts (TOTP, recovery code, passkey) share the account's budget."""
    if cache.get(_user_key(user_pk), 0) >= app_settings.LOGIN_FAILURES_PER_ACCOUNT:
        return True
    return bool(ip) and cache.get(_key("ip", ip or ""), 0) >= app_settings.LOGIN_FAILURES_PER_IP


def register_second_factor_failure(user_pk: int, ip: str | None) -> None:
    _incr(_user_key(user_pk))
    if ip:
        _incr(_key("ip", ip))


def reset_second_factor(user_pk: int) -> None:
    cache.delete(_user_key(user_pk))


def ip_locked(ip: str | None) -> bool:
    """For attempts that name no account (a passwordless passkey assertion)."""
    return bool(ip) and cache.get(_key("ip", ip or ""), 0) >= app_settings.LOGIN_FAILURES_PER_IP


def register_ip_failure(ip: str | None) -> None:
    if ip:
        _incr(_key("ip", ip))
