"""Failure counters per account and per IP in the shared cache (works across processes).

Only failures count; success resets the account counter. A locked account gets the same
message as a wrong password so attackers learn nothing about which accounts exist.
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache

from .app_settings import app_settings


def _key(kind: str, value: str) -> str:
    return f"vigil:fail:{kind}:{hashlib.sha256(value.lower().encode()).hexdigest()}"


def is_locked(username: str, ip: str | None) -> bool:
    if cache.get(_key("acct", username), 0) >= app_settings.LOGIN_FAILURES_PER_ACCOUNT:
        return True
    return bool(ip) and cache.get(_key("ip", ip or ""), 0) >= app_settings.LOGIN_FAILURES_PER_IP


def _incr(key: str) -> int:
    window = app_settings.LOGIN_FAILURE_WINDOW
    if cache.add(key, 1, window):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window)
        return 1


def register_failure(username: str, ip: str | None) -> None:
    _incr(_key("acct", username))
    if ip:
        _incr(_key("ip", ip))


def reset(username: str) -> None:
    cache.delete(_key("acct", username))
