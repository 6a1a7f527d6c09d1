"""Stateless server nonces for DPoP (RFC 9449 §8, §9).

A nonce is ``base64url(window || random || tag)``: the 8-byte index of the time window it
was issued in, 12 random bytes (so nonces are unpredictable, §8.1) and a 16-byte HMAC-SHA256
tag under a key derived by HKDF from ``SECRET_KEY``. Any web process can check one without
shared state; it is accepted during its own window and the next one, so it lives between
one and two ``SESSIONS_DPOP_NONCE_WINDOW``. ``SECRET_KEY_FALLBACKS`` keep nonces valid
across a key rotation. All characters are base64url, within §8.1's ``NQCHAR``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timezone as dt_timezone

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils import timezone

from ..app_settings import app_settings
from idp.encoding import b64url_decode, b64url_encode as b64url

_WINDOW_BYTES = 8
_RANDOM_BYTES = 12
_TAG_BYTES = 16
_RAW_LENGTH = _WINDOW_BYTES + _RANDOM_BYTES + _TAG_BYTES
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{48}$")  # 36 bytes -> 48 base64url characters


def _key(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"vigil", info=b"sessions.dpop.nonce").derive(
        secret.encode()
    )


def _secrets() -> list[str]:
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, b"dpop-nonce:" + body, hashlib.sha256).digest()[:_TAG_BYTES]


def _window(now: datetime) -> int:
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt_timezone.utc)
    return int(now.timestamp()) // max(1, app_settings.DPOP_NONCE_WINDOW)


def issue_nonce(now: datetime | None = None) -> str:
    """A fresh ``DPoP-Nonce`` value for the current window (RFC 9449 §8)."""
    window = _window(now or timezone.now())
    body = window.to_bytes(_WINDOW_BYTES, "big") + secrets.token_bytes(_RANDOM_BYTES)
    return b64url(body + _tag(_key(settings.SECRET_KEY), body))


def is_valid_nonce(value: object, now: datetime | None = None) -> bool:
    """True when ``value`` is a nonce we issued in the current or the previous window."""
    if not isinstance(value, str) or not _NONCE_RE.match(value):
        return False
    raw = b64url_decode(value)
    if len(raw) != _RAW_LENGTH:
        return False
    body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if not any(hmac.compare_digest(_tag(_key(secret), body), tag) for secret in _secrets()):
        return False
    issued = int.from_bytes(body[:_WINDOW_BYTES], "big")
    current = _window(now or timezone.now())
    return issued in (current, current - 1)

