"""Small cryptographic helpers shared by every app: hashing of bearer secrets,
encryption of secrets at rest, random tokens.

Bearer values (codes, refresh tokens, used-challenge marks) are stored only as SHA-256 hashes:
they are high-entropy, so a fast hash is enough and lookups stay indexed. Client
secrets use a keyed hash (HMAC) so a stolen table alone cannot be brute-forced
offline. Private keys use Fernet (AES-128-CBC + HMAC) with a key derived by HKDF
from ``IDP_KEY_ENCRYPTION_SECRET``; fallbacks allow rotating that secret.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from .encoding import b64url_encode


def generate_token(nbytes: int = 32) -> str:
    """A URL-safe random token with ``nbytes`` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def token_hash(value: str | bytes) -> str:
    """SHA-256 hex of a high-entropy bearer value (cache keys, values kept as text)."""
    if isinstance(value, str):
        value = value.encode()
    return hashlib.sha256(value).hexdigest()


def token_digest(value: str | bytes) -> bytes:
    """SHA-256 of a high-entropy bearer value as the 32 bytes stored and indexed in place of the
    value (refresh tokens, authorization codes): half the key size of its hex spelling, and no
    second (``LIKE``) index beside the unique one on PostgreSQL (issue 19)."""
    if isinstance(value, str):
        value = value.encode()
    return hashlib.sha256(value).digest()


@functools.lru_cache(maxsize=32)
def _derive(secret: str, purpose: bytes) -> bytes:
    """The key for ``purpose`` from ``secret`` (HKDF-SHA256, RFC 5869), derived once per
    secret and purpose in a process: client authentication, refresh rotation and decryption
    are hot paths. Keyed by the secret itself, so a changed setting derives anew."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"vigil", info=purpose).derive(secret.encode())


@dataclass(frozen=True)
class SecretRing:
    """A setting's current secret and the retiring ones still accepted, read from settings on
    every use (``<NAME>`` and ``<NAME>_FALLBACKS``, the pattern of Django's
    ``SECRET_KEY_FALLBACKS``): new values are made with ``current``; values made with any
    secret in ``all()`` still verify or decrypt, so a secret can rotate without a cut-over."""

    setting: str

    @property
    def current(self) -> str:
        return str(getattr(settings, self.setting))

    @property
    def fallbacks(self) -> list[str]:
        return list(getattr(settings, f"{self.setting}_FALLBACKS", []))

    def all(self) -> list[str]:
        return [self.current, *self.fallbacks]


#: Django's signing secret: signed values (``core.signed_values``).
SIGNING_SECRETS = SecretRing("SECRET_KEY")
#: Secrets at rest, client-secret hashes and refresh successors.
ENCRYPTION_SECRETS = SecretRing("IDP_KEY_ENCRYPTION_SECRET")


def keyed_hash(value: str, *, secret: str | None = None) -> str:
    """HMAC-SHA256 of a client secret with a key derived from the encryption secret."""
    key = _derive(secret or ENCRYPTION_SECRETS.current, b"client-secret")
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def keyed_hash_candidates(value: str) -> list[str]:
    """``keyed_hash(value)`` under the current and every fallback secret: what a value stored
    before a rotation of ``IDP_KEY_ENCRYPTION_SECRET`` may be stored as (look-ups by hash)."""
    return list(dict.fromkeys(keyed_hash(value, secret=secret) for secret in ENCRYPTION_SECRETS.all()))


def keyed_hash_matches(value: str, stored: str) -> bool:
    """Constant-time check of ``value`` against a stored keyed hash (current or fallback secrets)."""
    return any(hmac.compare_digest(candidate, stored) for candidate in keyed_hash_candidates(value))


def successor_token(presented: str, *, secret: str | None = None) -> str:
    """The one successor a refresh token can ever have: base64url(HMAC-SHA256(k, presented))
    with ``k`` derived from ``IDP_KEY_ENCRYPTION_SECRET`` for this purpose alone.

    Deterministic, so rotating the same token twice (a retry after a lost response, or
    concurrent presentations) yields the same successor rather than a second live token;
    unpredictable without the server secret, and 256 bits like any random token."""
    return _derived_token(presented, _SUCCESSOR, secret)


_SUCCESSOR = b"refresh-token-successor"
_FIRST_REFRESH = b"code-first-refresh-token"


def _derived_token(value: str, purpose: bytes, secret: str | None) -> str:
    """base64url(HMAC-SHA256(k, value)), ``k`` derived for ``purpose`` from ``secret`` (the
    current one by default): a token that only the server can derive from ``value``."""
    key = _derive(secret or ENCRYPTION_SECRETS.current, purpose)
    return b64url_encode(hmac.new(key, value.encode(), hashlib.sha256).digest())


def _derived_candidates(value: str, purpose: bytes) -> list[str]:
    """``_derived_token`` under the current secret and each fallback, without repeats."""
    return list(dict.fromkeys(_derived_token(value, purpose, secret) for secret in ENCRYPTION_SECRETS.all()))


def first_refresh_token(code: str, *, secret: str | None = None) -> str:
    """The first refresh token of the family a code starts (an authorization code, or an RFC
    8628 device code: both single-use values the server drew): base64url(HMAC-SHA256(k, code)),
    ``k`` derived for this purpose alone. One per code, ever, so the retry of an exchange whose
    answer was lost can be given the same token again
    (``sessions.flows.code_exchange.answer_again``); unpredictable without the server secret."""
    return _derived_token(code, _FIRST_REFRESH, secret)


def first_refresh_candidates(code: str) -> list[str]:
    """``first_refresh_token`` under the current secret and each fallback."""
    return _derived_candidates(code, _FIRST_REFRESH)


def successor_candidates(presented: str) -> list[str]:
    """The successor of ``presented`` under the current secret and each fallback (a token
    rotated just before the secret was rotated is still recognised)."""
    return _derived_candidates(presented, _SUCCESSOR)


def _fernet() -> MultiFernet:
    return MultiFernet(
        [Fernet(base64.urlsafe_b64encode(_derive(s, b"secrets-at-rest"))) for s in ENCRYPTION_SECRETS.all()]
    )


def encrypt(plaintext: bytes) -> str:
    return _fernet().encrypt(plaintext).decode()


class DecryptionError(Exception):
    """The stored secret cannot be decrypted with any configured key-encryption secret."""


def decrypt(ciphertext: str) -> bytes:
    try:
        return _fernet().decrypt(ciphertext.encode())
    except InvalidToken as exc:
        raise DecryptionError("secret cannot be decrypted with the configured key-encryption secrets") from exc


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)
