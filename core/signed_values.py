"""Values the server signs now and checks later without storing them, on
``django.core.signing`` (HMAC-SHA256 under ``SECRET_KEY``; ``SECRET_KEY_FALLBACKS`` still
verify, so a key rotation does not void values in flight).

Each use has its own salt (``Purpose``): Django derives a distinct key per salt, so a value
made for one use never verifies as another (an attestation challenge is not a DPoP nonce).
A value is ``base64url(payload) "." base64url(HMAC-SHA256)``: the caller's compact binary
payload, then Django's signature over its base64url text, so every character is URL-safe
(base64url or the one dot) and each value has exactly one spelling.

Lifetimes are carried in the payload and judged by the caller against an injected ``now``
(STYLE §6) rather than by ``TimestampSigner``'s ``max_age``, which reads the wall clock. A
value in any other form (including the formats used before this module) is simply unknown
to ``load``.
"""

from __future__ import annotations

from enum import StrEnum

from django.core import signing

from .crypto import SIGNING_SECRETS
from .encoding import b64url_decode, b64url_encode

_SEP = "."


class Purpose(StrEnum):
    """The salt of each kind of signed value."""

    ATTESTATION_CHALLENGE = "vigil.attestation.challenge"
    DPOP_NONCE = "vigil.dpop.nonce"
    RECOVERY_REGENERATION = "vigil.accounts.recovery_regeneration"


def _signer(purpose: Purpose) -> signing.Signer:
    fallbacks: list[bytes | str] = [*SIGNING_SECRETS.fallbacks]
    return signing.Signer(
        key=SIGNING_SECRETS.current, fallback_keys=fallbacks, salt=purpose.value, sep=_SEP, algorithm="sha256"
    )


def dump(purpose: Purpose, payload: bytes) -> str:
    """Sign ``payload`` for ``purpose`` under the current ``SECRET_KEY``."""
    return _signer(purpose).sign(b64url_encode(payload))


def load(purpose: Purpose, value: object, *, max_chars: int) -> bytes | None:
    """The payload of a value signed for ``purpose`` under the current or a fallback key, or
    ``None`` for anything else (not a string, too long, edited, another purpose, old format).
    The signature is checked before the payload is decoded."""
    if not isinstance(value, str) or len(value) > max_chars:
        return None
    try:
        return b64url_decode(_signer(purpose).unsign(value))
    except (signing.BadSignature, ValueError):
        return None
