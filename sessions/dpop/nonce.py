"""Stateless server nonces for DPoP (RFC 9449 §8, §9).

A nonce is the 8-byte index of the time window it was issued in and 12 random bytes (so
nonces are unpredictable, §8.1), signed by ``core.signed_values`` (``django.core.signing``
under ``SECRET_KEY`` with the nonce's own salt): ``base64url(window || random) "."
base64url(HMAC-SHA256)``, 71 characters, all within §8.1's ``NQCHAR``. Any web process can
check one without shared state; it is accepted during its own window and the next one, so it
lives between one and two ``SESSIONS_DPOP_NONCE_WINDOW``. ``SECRET_KEY_FALLBACKS`` keep
nonces valid across a key rotation. A nonce in the format used before (48 base64url
characters), or any value signed for another purpose, is refused like a stale nonce: the
client retries with the ``DPoP-Nonce`` of the ``use_dpop_nonce`` answer.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from django.utils import timezone

from core.signed_values import Purpose, dump, load

from ..app_settings import app_settings

_WINDOW_BYTES = 8
_RANDOM_BYTES = 12
_MAX_CHARS = 128  # a nonce we issue has 71; refuse anything longer before checking


def _window(now: datetime) -> int:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return int(now.timestamp()) // max(1, app_settings.DPOP_NONCE_WINDOW)


def issue_nonce(now: datetime | None = None) -> str:
    """A fresh ``DPoP-Nonce`` value for the current window (RFC 9449 §8)."""
    window = _window(now or timezone.now())
    return dump(Purpose.DPOP_NONCE, window.to_bytes(_WINDOW_BYTES, "big") + secrets.token_bytes(_RANDOM_BYTES))


def is_valid_nonce(value: object, now: datetime | None = None) -> bool:
    """True when ``value`` is a nonce we issued in the current or the previous window."""
    body = load(Purpose.DPOP_NONCE, value, max_chars=_MAX_CHARS)
    if body is None or len(body) != _WINDOW_BYTES + _RANDOM_BYTES:
        return False
    issued = int.from_bytes(body[:_WINDOW_BYTES], "big")
    current = _window(now or timezone.now())
    return issued in (current, current - 1)
