"""Attestation challenges: issue and redeem (single use, short-lived, bound to client + purpose).

Challenges are stateless: the value carries its own client, purpose and expiry, signed by
``core.signed_values`` (``django.core.signing`` under ``SECRET_KEY`` with the challenge's own
salt; ``SECRET_KEY_FALLBACKS`` still verify, so a key rotation does not void challenges in
flight). Issuing writes nothing; redeeming reads no row. The signed payload::

    expires_at (uint32, Unix seconds) | purpose code (1 byte) | nonce length (1 byte)
    | nonce (``ATTESTATION_CHALLENGE_BYTES`` random bytes, at least 16) | client_id (UTF-8)

on the wire as ``base64url(payload) "." base64url(HMAC-SHA256)``. A value in the format used
before (one base64url string with its own tag) is ``challenge_unknown``, like any value this
server did not sign: the app fetches a new challenge.

Single use is enforced by the shared Django cache: redemption ``cache.add``s the SHA-256 of
the value until shortly after its expiry, and ``add`` is atomic (Redis ``SET NX``), so of two
concurrent redemptions exactly one wins. That cache must be shared by every web process
(Redis in production; system check ``vigil.W001``). If it is flushed, a used but unexpired
challenge could be presented again; every binding also names the single-use code or the
refresh token's hash, and App Attest's counter must increase, so such a replay still fails.
"""

from __future__ import annotations

import math
import secrets
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from clients.models import Client
from core import crypto
from core.cache import claim
from core.events import EventType, Outcome, record
from core.signed_values import Purpose, dump, load

from ..app_settings import app_settings
from ..errors import AttestationError, Reason
from ..models import ChallengePurpose

_HEADER = struct.Struct(">IBB")  # expires_at, purpose code, nonce length
_MIN_NONCE_BYTES = 16
_MAX_VALUE_CHARS = 512  # far above any value we mint; refuse before decoding
_PURPOSE_CODES = {ChallengePurpose.ENROLL.value: 1, ChallengePurpose.REFRESH.value: 2}
_PURPOSES = {code: purpose for purpose, code in _PURPOSE_CODES.items()}
USED_KEY_PREFIX = "vigil:challenge-used:"
USED_MARGIN = 30  # seconds a used mark outlives the expiry (clock skew between web processes)


@dataclass(frozen=True)
class IssuedChallenge:
    value: str
    purpose: str
    expires_at: datetime
    expires_in: int


@dataclass(frozen=True)
class RedeemedChallenge:
    """What a successfully redeemed challenge vouched for."""

    client_id: str
    purpose: str
    expires_at: datetime
    used_at: datetime


def issue_challenge(client: Client, purpose: str, *, now: datetime | None = None) -> IssuedChallenge:
    """Mint a fresh challenge for ``client`` and ``purpose`` (enroll | refresh); no storage."""
    if purpose not in ChallengePurpose.values:
        raise ValueError(f"unknown challenge purpose {purpose!r}")
    now = now or timezone.now()
    lifetime = app_settings.CHALLENGE_LIFETIME
    expires = int((now + timedelta(seconds=lifetime)).timestamp())
    nonce = secrets.token_bytes(min(255, max(_MIN_NONCE_BYTES, app_settings.CHALLENGE_BYTES)))
    payload = _HEADER.pack(expires, _PURPOSE_CODES[purpose], len(nonce)) + nonce + client.client_id.encode()
    value = dump(Purpose.ATTESTATION_CHALLENGE, payload)
    return IssuedChallenge(value=value, purpose=purpose, expires_at=_from_epoch(expires), expires_in=lifetime)


def redeem_challenge(value: str, *, client_id: str, purpose: str, now: datetime | None = None) -> RedeemedChallenge:
    """Consume a challenge exactly once, recording a security event when that fails."""
    try:
        return consume_challenge(value, client_id=client_id, purpose=purpose, now=now)
    except AttestationError as exc:
        record(
            EventType.ATTESTATION_CHALLENGE, outcome=Outcome.FAILURE, reason=exc.reason, client_id=client_id,
            purpose=purpose,
        )
        raise


def refuse_for_rate(request: Any, wait: float | None) -> None:
    """A challenge refused by the per-address rate (``ATTESTATION_CHALLENGE_RATE``) is a
    security decision like any other: recorded, with how long the address must wait."""
    record(
        EventType.ATTESTATION_CHALLENGE,
        outcome=Outcome.DENIED,
        reason="throttled",
        request=request,
        retry_after=math.ceil(wait) if wait is not None else None,
    )


def consume_challenge(value: str, *, client_id: str, purpose: str, now: datetime | None = None) -> RedeemedChallenge:
    """Consume a challenge exactly once, without recording (for flows that record the
    overall decision themselves). Failures: ``challenge_unknown`` (missing, malformed, bad
    tag, other version), ``challenge_wrong_client``, ``challenge_wrong_purpose``,
    ``challenge_expired``, ``challenge_reused``. Only a challenge that passes every other
    check is consumed: one presented by the wrong client, for the wrong purpose or too late
    stays redeemable by its rightful redemption (until it expires)."""
    now = now or timezone.now()
    claims = _verified_claims(value)
    if not crypto.constant_time_equals(claims.client_id, client_id):
        raise AttestationError(Reason.CHALLENGE_WRONG_CLIENT)
    if claims.purpose != purpose:
        raise AttestationError(Reason.CHALLENGE_WRONG_PURPOSE, f"issued for {claims.purpose}")
    if now >= claims.expires_at:
        raise AttestationError(Reason.CHALLENGE_EXPIRED)
    timeout = math.ceil((claims.expires_at - now).total_seconds()) + USED_MARGIN
    if not claim(cache, used_key(value), timeout):
        raise AttestationError(Reason.CHALLENGE_REUSED)
    return RedeemedChallenge(
        client_id=claims.client_id, purpose=claims.purpose, expires_at=claims.expires_at, used_at=now
    )


def claim_challenge(value: str, *, client_id: str, purpose: str, now: datetime | None = None) -> None:
    """The hot-path form of ``consume_challenge`` (no result): a tag check and one cache add."""
    consume_challenge(value, client_id=client_id, purpose=purpose, now=now)


def used_key(value: str) -> str:
    """Cache key marking ``value`` as used (its SHA-256: fixed length, never the value)."""
    return USED_KEY_PREFIX + crypto.token_hash(value)


# ------------------------------------------------------------------ encoding
@dataclass(frozen=True)
class _Claims:
    client_id: str
    purpose: str
    expires_at: datetime


def _verified_claims(value: object) -> _Claims:
    """Authenticate and decode ``value``: anything this server did not sign for challenges
    (under its current or a fallback ``SECRET_KEY``) is ``challenge_unknown``. The signature is
    checked before any field is trusted, so editing the client, purpose or expiry only yields
    ``challenge_unknown``."""
    payload = load(Purpose.ATTESTATION_CHALLENGE, value, max_chars=_MAX_VALUE_CHARS)
    if payload is None or len(payload) < _HEADER.size + _MIN_NONCE_BYTES:
        raise AttestationError(Reason.CHALLENGE_UNKNOWN)
    expires, code, nonce_bytes = _HEADER.unpack_from(payload)
    client_start = _HEADER.size + nonce_bytes
    if code not in _PURPOSES or nonce_bytes < _MIN_NONCE_BYTES or client_start > len(payload):
        raise AttestationError(Reason.CHALLENGE_UNKNOWN)
    try:
        client_id = payload[client_start:].decode()
    except UnicodeDecodeError as exc:
        raise AttestationError(Reason.CHALLENGE_UNKNOWN) from exc
    return _Claims(client_id=client_id, purpose=_PURPOSES[code], expires_at=_from_epoch(expires))


def _from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
