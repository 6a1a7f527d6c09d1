"""The Receiver: accept SETs pushed to ``/ssf/receive/<slug>`` (RFC 8935 §2) by a
registered transmitter, verify them (RFC 8417 §2, SSF 1.0 §"Events"), refuse replays and
map each CAEP event to an action by the transmitter's policy.

Order of checks: known and enabled transmitter, its Authorization header (if one is
configured), media type, JWS header (``typ``, ``alg`` in the transmitter's list), key by
``kid`` from its JWKS (static, or fetched with a short shared cache), signature, claims
(``iss``, ``aud``, ``jti``, ``iat`` window), then replay: the ``jti`` is claimed in the
shared cache *and* as a unique ``ReceivedSet`` row in the transaction that applies the
actions. Anything refused changes nothing and is recorded as ``ssf.set.refused``.

The same SET delivered again (a transmitter retrying after its 202 was lost) is answered as
the first time, 202 (RFC 8935 §2: "The SET Recipient MUST respond as it would if the SET had
not been previously received"), is not applied again, and is recorded as
``ssf.set.duplicate``. "The same SET" is the same transmitter, ``jti`` and verified claims
(their SHA-256 is kept with the row): not the same bytes, since an ES256 or PS256 signature
differs at every signing and a transmitter (Vigil's own included) may sign each attempt
afresh. Another SET reusing an accepted ``jti`` stays refused ("replayed jti").
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.events import EventType, Outcome, record
from core.json_shapes import listed

from . import actions, jwks_cache
from .app_settings import app_settings
from .models import ReceivedSet, SsfTransmitter
from .set_tokens import SetError, SetErrorCode, VerifyPolicy, check_header, header_of, verify

SET_MEDIA_TYPE = "application/secevent+jwt"


@dataclass(frozen=True)
class Push:
    """One HTTP push as the view saw it."""

    slug: str
    body: bytes
    content_type: str
    authorization: str
    ip: str | None
    too_large: bool = False  # over ``IDP_SSF_MAX_BODY_BYTES`` (declared or read): refused unread


def find_transmitter(slug: str) -> SsfTransmitter:
    transmitter = SsfTransmitter.objects.filter(slug=slug[:40], enabled=True).first() if slug else None
    if transmitter is None:
        raise SetError(SetErrorCode.ACCESS_DENIED, "unknown or disabled transmitter")
    return transmitter


def _token(push: Push) -> str:
    if push.content_type.split(";")[0].strip().lower() != SET_MEDIA_TYPE:
        raise SetError(SetErrorCode.INVALID_REQUEST, f"Content-Type must be {SET_MEDIA_TYPE}")
    try:
        return push.body.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise SetError(SetErrorCode.INVALID_REQUEST, "the body is not a compact JWS") from exc


def _verified_claims(transmitter: SsfTransmitter, token: str, now: datetime) -> dict[str, Any]:
    policy = VerifyPolicy(issuer=transmitter.issuer, audience=transmitter.audience,
                          algorithms=listed(transmitter.allowed_algs), now=now)
    check_header(header_of(token), policy.algorithms)  # before any key is fetched for it
    try:
        return verify(token, jwks_cache.keys_for(transmitter, now=now), policy)
    except SetError as error:
        if error.code != SetErrorCode.INVALID_KEY or not jwks_cache.may_refetch(transmitter, now=now):
            raise
    return verify(token, jwks_cache.keys_for(transmitter, now=now, refresh=True), policy)


def _replay_key(transmitter: SsfTransmitter, jti: str) -> str:
    return "ssf:jti:" + hashlib.sha256(f"{transmitter.pk}:{jti}".encode()).hexdigest()


def _claims_hash(claims: dict[str, Any]) -> str:
    """What makes a SET the same SET: its verified claims, whatever the signature's bytes."""
    return hashlib.sha256(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def receive(push: Push, now: datetime | None = None) -> ReceivedSet:
    """Verify and act on one pushed SET; raise ``SetError`` (nothing changed) when refused.
    The same SET again returns its first ``ReceivedSet`` unchanged (RFC 8935 §2)."""
    moment = now or timezone.now()
    transmitter: SsfTransmitter | None = None
    try:
        if push.too_large:
            raise SetError(SetErrorCode.INVALID_REQUEST, "the SET is too large")
        transmitter = find_transmitter(push.slug)
        if not transmitter.authorization_matches(push.authorization):
            raise SetError(SetErrorCode.AUTHENTICATION_FAILED, "missing or wrong Authorization header")
        claims = _verified_claims(transmitter, _token(push), moment)
        return _accept(transmitter, claims, moment, push.ip)
    except SetError as error:
        record(EventType.SSF_SET_REFUSED, outcome=Outcome.DENIED, reason=error.code, ip_address=push.ip,
               transmitter=transmitter.name if transmitter else push.slug[:40], description=error.description)
        raise


def _accept(transmitter: SsfTransmitter, claims: dict[str, Any], moment: datetime, ip: str | None) -> ReceivedSet:
    """Claim the ``jti`` (the cache first, then the unique row, which waits for a first delivery
    still in its transaction) and apply the events; or acknowledge the same SET again."""
    key, digest = _replay_key(transmitter, claims["jti"]), _claims_hash(claims)
    window = app_settings.MAX_SET_AGE_SECONDS + app_settings.CLOCK_SKEW_SECONDS
    claimed = cache.add(key, digest, timeout=window)
    if not claimed and not _same(cache.get(key), digest):
        raise SetError(SetErrorCode.INVALID_REQUEST, "replayed jti")
    try:
        with transaction.atomic():
            received, first = _claim_jti(transmitter, claims, digest, moment)
            if first:
                _apply(received, transmitter, claims, moment, ip)
            else:
                record(EventType.SSF_SET_DUPLICATE, transmitter=transmitter.name, jti=claims["jti"], ip_address=ip,
                       events=list(claims["events"]), txn=claims.get("txn", ""))
    except BaseException:
        if claimed:
            # Nothing was applied, or the row refused this SET: the claim goes, so a retry is
            # judged afresh (the row still refuses a replay, and acknowledges the same SET).
            cache.delete(key)
        raise
    return received


def _same(known: object, digest: str) -> bool:
    return isinstance(known, str) and hmac.compare_digest(known, digest)


def _apply(
    received: ReceivedSet, transmitter: SsfTransmitter, claims: dict[str, Any], moment: datetime, ip: str | None
) -> None:
    received.actions = [
        actions.apply(transmitter, event_type, event, claims, moment) for event_type, event in claims["events"].items()
    ]
    received.save(update_fields=["actions"])
    record(EventType.SSF_SET_RECEIVED, transmitter=transmitter.name, jti=claims["jti"], ip_address=ip,
           events=list(claims["events"]), actions=received.actions, txn=claims.get("txn", ""))


def _claim_jti(
    transmitter: SsfTransmitter, claims: dict[str, Any], digest: str, moment: datetime
) -> tuple[ReceivedSet, bool]:
    """The unique (transmitter, jti) row, the replay guard that outlives any cache, and whether
    it is new; the row of the same SET accepted before, or ``SetError`` for another SET."""
    try:
        with transaction.atomic():
            return ReceivedSet.objects.create(
                transmitter=transmitter, jti=claims["jti"], claims_hash=digest, event_types=list(claims["events"]),
                issued_at=datetime.fromtimestamp(claims["iat"], tz=UTC), received_at=moment,
            ), True
    except IntegrityError as exc:
        earlier = ReceivedSet.objects.filter(transmitter=transmitter, jti=claims["jti"]).first()
        if earlier is None or not _same(earlier.claims_hash, digest):
            raise SetError(SetErrorCode.INVALID_REQUEST, "replayed jti") from exc
        return earlier, False
