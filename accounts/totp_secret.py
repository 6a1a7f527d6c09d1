"""TOTP secrets encrypted at rest, in the 80-hex-character ``TOTPDevice.key`` column.

Layout (hex): salt (8 bytes) || secret XOR keystream (20 bytes) || tag (8 bytes) = 72
characters. The keystream and the tag key come from HKDF-SHA256 over
``IDP_KEY_ENCRYPTION_SECRET`` with the random per-device salt; the tag (truncated
HMAC-SHA256) tells which of the current/fallback secrets applies, so that secret can rotate.
A 40-character value is a legacy plaintext key and is read as is.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

SECRET_BYTES = 20
SALT_BYTES = 8
TAG_BYTES = 8
ENCRYPTED_HEX_LENGTH = 2 * (SALT_BYTES + SECRET_BYTES + TAG_BYTES)


class SecretUnavailable(Exception):
    """No configured key-encryption secret opens this TOTP secret."""


def _secrets() -> list[str]:
    return [settings.IDP_KEY_ENCRYPTION_SECRET, *getattr(settings, "IDP_KEY_ENCRYPTION_SECRET_FALLBACKS", [])]


def _derive(secret: str, salt: bytes) -> tuple[bytes, bytes]:
    material = HKDF(algorithm=hashes.SHA256(), length=SECRET_BYTES + 32, salt=salt, info=b"vigil-totp-secret").derive(
        secret.encode()
    )
    return material[:SECRET_BYTES], material[SECRET_BYTES:]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def seal(raw: bytes) -> str:
    """Encrypt a 20-byte TOTP secret for the ``key`` column."""
    if len(raw) != SECRET_BYTES:
        raise ValueError("TOTP secrets are 20 bytes")
    salt = secrets.token_bytes(SALT_BYTES)
    stream, mac_key = _derive(settings.IDP_KEY_ENCRYPTION_SECRET, salt)
    body = salt + _xor(raw, stream)
    tag = hmac.new(mac_key, body, hashlib.sha256).digest()[:TAG_BYTES]
    return (body + tag).hex()


def open_(stored: str) -> bytes:
    """The raw secret from the ``key`` column (sealed or legacy plaintext)."""
    if len(stored) != ENCRYPTED_HEX_LENGTH:
        return bytes.fromhex(stored)
    data = bytes.fromhex(stored)
    salt, cipher, tag = data[:SALT_BYTES], data[SALT_BYTES:-TAG_BYTES], data[-TAG_BYTES:]
    for secret in _secrets():
        stream, mac_key = _derive(secret, salt)
        if hmac.compare_digest(hmac.new(mac_key, salt + cipher, hashlib.sha256).digest()[:TAG_BYTES], tag):
            return _xor(cipher, stream)
    raise SecretUnavailable("TOTP secret cannot be opened with the configured key-encryption secrets")
