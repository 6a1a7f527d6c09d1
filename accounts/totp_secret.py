"""TOTP secrets encrypted at rest with the project's Fernet (``core.crypto.encrypt``: keys
derived from ``IDP_KEY_ENCRYPTION_SECRET``, its fallbacks still decrypt), stored in
django-otp's ``TOTPDevice.key`` column.

A Fernet token of a 20-byte secret is 120 characters; django-otp declares that column
``max_length=80``, so migration ``accounts.0003`` widens it on PostgreSQL (state unchanged;
see its docstring) and re-encrypts the rows sealed by the earlier home-made format. A
40-character value is a plaintext key as django-otp itself writes it and is read as is.
"""

from __future__ import annotations

from core import crypto

SECRET_BYTES = 20
PLAINTEXT_HEX_LENGTH = 2 * SECRET_BYTES


class SecretUnavailable(Exception):
    """No configured key-encryption secret opens this TOTP secret."""


def seal(raw: bytes) -> str:
    """Encrypt a 20-byte TOTP secret for the ``key`` column (a 120-character Fernet token)."""
    if len(raw) != SECRET_BYTES:
        raise ValueError("TOTP secrets are 20 bytes")
    return crypto.encrypt(raw)


def open_(stored: str) -> bytes:
    """The raw secret from the ``key`` column (Fernet token or django-otp plaintext hex)."""
    if len(stored) == PLAINTEXT_HEX_LENGTH:
        return bytes.fromhex(stored)
    try:
        return crypto.decrypt(stored)
    except crypto.DecryptionError as exc:
        raise SecretUnavailable("TOTP secret cannot be opened with the configured key-encryption secrets") from exc
