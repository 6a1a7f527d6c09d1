"""Attestation challenges: issue and redeem (single use, short-lived, bound to client + purpose).

Challenges live in the database (shared by every web process), stored only as the
SHA-256 of their value. Redemption is a conditional ``UPDATE … WHERE used_at IS NULL``
inside ``atomic()``, so two concurrent redemptions cannot both succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from idp import crypto
from idp.events import record
from idp.models import Client

from ..app_settings import app_settings
from ..errors import AttestationError, Reason
from ..models import Challenge, ChallengePurpose


@dataclass(frozen=True)
class IssuedChallenge:
    value: str
    purpose: str
    expires_at: datetime
    expires_in: int


def issue_challenge(client: Client, purpose: str, *, now: datetime | None = None) -> IssuedChallenge:
    """Create a fresh random challenge for ``client`` and ``purpose`` (enroll | refresh)."""
    if purpose not in ChallengePurpose.values:
        raise ValueError(f"unknown challenge purpose {purpose!r}")
    now = now or timezone.now()
    lifetime = app_settings.CHALLENGE_LIFETIME
    value = crypto.generate_token(app_settings.CHALLENGE_BYTES)
    expires_at = now + timedelta(seconds=lifetime)
    Challenge.objects.create(
        challenge_hash=crypto.token_hash(value), client=client, purpose=purpose, created_at=now, expires_at=expires_at
    )
    return IssuedChallenge(value=value, purpose=purpose, expires_at=expires_at, expires_in=lifetime)


def redeem_challenge(value: str, *, client_id: str, purpose: str, now: datetime | None = None) -> Challenge:
    """Consume a challenge exactly once, recording a security event when that fails."""
    try:
        return consume_challenge(value, client_id=client_id, purpose=purpose, now=now)
    except AttestationError as exc:
        record("attestation.challenge", outcome="failure", reason=exc.reason, client_id=client_id, purpose=purpose)
        raise


def consume_challenge(value: str, *, client_id: str, purpose: str, now: datetime | None = None) -> Challenge:
    """Consume a challenge exactly once, without recording (for flows that record the
    overall decision themselves). Failures: ``challenge_unknown``, ``challenge_wrong_client``,
    ``challenge_wrong_purpose``, ``challenge_reused``, ``challenge_expired``. A challenge
    presented by the wrong client or for the wrong purpose is not consumed."""
    now = now or timezone.now()
    if not value or not isinstance(value, str):
        raise AttestationError(Reason.CHALLENGE_UNKNOWN)
    challenge = (
        Challenge.objects.select_related("client").filter(challenge_hash=crypto.token_hash(value)).first()
    )
    if challenge is None:
        raise AttestationError(Reason.CHALLENGE_UNKNOWN)
    if not crypto.constant_time_equals(challenge.client.client_id, client_id):
        raise AttestationError(Reason.CHALLENGE_WRONG_CLIENT)
    if challenge.purpose != purpose:
        raise AttestationError(Reason.CHALLENGE_WRONG_PURPOSE, f"issued for {challenge.purpose}")
    if challenge.used_at is not None:
        raise AttestationError(Reason.CHALLENGE_REUSED)
    if now >= challenge.expires_at:
        raise AttestationError(Reason.CHALLENGE_EXPIRED)
    with transaction.atomic():
        updated = Challenge.objects.filter(pk=challenge.pk, used_at__isnull=True).update(used_at=now)
    if updated != 1:
        raise AttestationError(Reason.CHALLENGE_REUSED, "redeemed concurrently")
    challenge.used_at = now
    return challenge


def claim_challenge(value: str, *, client_id: str, purpose: str, now: datetime | None = None) -> None:
    """The hot-path form of ``consume_challenge``: one conditional UPDATE when the challenge
    is good; only a refused one pays for the look-up that names the precise reason."""
    now = now or timezone.now()
    if value and isinstance(value, str):
        claimed = Challenge.objects.filter(
            challenge_hash=crypto.token_hash(value),
            client__client_id=client_id,
            purpose=purpose,
            used_at__isnull=True,
            expires_at__gt=now,
        ).update(used_at=now)
        if claimed == 1:
            return
    consume_challenge(value, client_id=client_id, purpose=purpose, now=now)


def purge_expired_challenges(*, now: datetime | None = None) -> int:
    """Delete challenges past their expiry (for a periodic task); returns how many."""
    deleted, _ = Challenge.objects.expired(now or timezone.now()).delete()
    return deleted
