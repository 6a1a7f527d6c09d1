"""The device authorization grant's lifecycle (RFC 8628): start, find by user code, decide,
poll and redeem, each step under the row's lock and returning one typed result.

- :func:`start` (§3.1-3.2): a device code (SHA-256 stored) and a short user code (HMAC
  stored) of 8 characters from 20 consonants without vowels or look-alikes (§6.1:
  ``BCDFGHJKLMNPQRSTVWXZ``, shown as ``XXXX-XXXX``; about 34.5 bits).
- :func:`find_pending` (§3.3): the pending, unexpired authorization of a user code as typed
  (case, spaces and dashes ignored).
- :func:`decide` (§3.3): the signed-in user approves or denies, once (conditional UPDATE).
- :func:`poll` (§3.4-3.5): ``authorization_pending``, ``slow_down`` (a poll sooner than the
  interval; the interval grows by 5 s), ``expired_token``, ``access_denied``, or the tokens:
  an approved authorization is redeemed once, starting the session family in the same
  transaction as the issue. A redeemed code polled again is judged as a used authorization
  code is (``sessions.flows.code_exchange.answer_again``): the retry of a poll whose answer
  was lost gets the same answer again, anything else is reuse and revokes what it issued.
- :func:`granted_resources` (RFC 8707 §2.2): what a poll's ``resource`` may narrow, read
  before the poll and without counting as one.
- :func:`count_refused_poll` (§3.5): a poll refused for its ``resource`` still counts for the
  pace, so refusals are no way around ``slow_down``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidGrantError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from clients.models import Client
from core.app_settings import app_settings
from core.crypto import generate_token, keyed_hash, keyed_hash_candidates, token_hash
from core.events import EventType, Outcome, record
from core.policy import KeptAfterRollback
from core.sql import insert
from sessions.flows import code_exchange
from sessions.flows.revocation import Reason
from sessions.flows.tokens import IssuedTokens, place_of
from sessions.models import DeviceSession

from ..models import DeviceAuthorization
from ..models import DeviceAuthorizationStatus as Status

#: RFC 8628 §6.1's base-20 alphabet: no vowels (no words), no look-alike digits.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
#: RFC 8628 §3.5: each slow_down adds five seconds to the interval.
SLOW_DOWN_STEP = 5


@dataclass(frozen=True)
class Started:
    device_code: str
    user_code: str
    authorization: DeviceAuthorization


class PollOutcome(StrEnum):
    """What a poll with a device code found (RFC 8628 §3.5)."""

    UNKNOWN = "unknown"  # no such device code for this client
    PENDING = "authorization_pending"
    SLOW_DOWN = "slow_down"
    EXPIRED = "expired_token"
    DENIED = "access_denied"
    REDEEMED_ALREADY = "redeemed_already"  # polled again and refused: reuse, or its user is inactive
    ANSWERED_AGAIN = "answered_again"  # polled again by the poll that redeemed it: the same answer
    ISSUED = "issued"


@dataclass(frozen=True)
class Polled:
    outcome: PollOutcome
    session: DeviceSession | None = None
    issued: IssuedTokens | None = None


#: Issues the tokens of the new family, inside the redemption's transaction (its first
#: refresh token is ``first_refresh_token(device_code)``), as a code exchange's issuer does;
#: a retry's ``code_exchange.Reissuer`` issues an access (and ID) token again, no refresh token.
Issuer = code_exchange.Issuer
Reissuer = code_exchange.Reissuer


def generate_user_code() -> str:
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def display(user_code: str) -> str:
    """``XXXX-XXXX``: how the code is shown to the user (§6.1: easier to read and type)."""
    return f"{user_code[:4]}-{user_code[4:]}"


def normalise(typed: str) -> str:
    """The user code as typed, without separators and in upper case (§6.1)."""
    return "".join(c for c in typed.upper() if c.isalnum())[:32]


def _taken_under_a_fallback_secret(user_code: str) -> bool:
    """A code pending since before a rotation of the encryption secret is stored under the old
    one: the unique index cannot see that a new code equals it (``find_pending`` tries both)."""
    older = keyed_hash_candidates(user_code)[1:]
    return bool(older) and DeviceAuthorization.objects.filter(user_code_hash__in=older).exists()


def start(client: Client, *, scope: str, resource: list[str], now: datetime) -> Started:
    """A new pending authorization; a (rare) user-code collision draws again."""
    device_code = generate_token(32)
    for _ in range(5):
        user_code = generate_user_code()
        if _taken_under_a_fallback_secret(user_code):
            continue
        row = DeviceAuthorization(
            device_code_hash=token_hash(device_code), user_code_hash=keyed_hash(user_code), client=client,
            scope=scope, resource=resource, interval=app_settings.DEVICE_CODE_INTERVAL, created_at=now,
            expires_at=now + timedelta(seconds=app_settings.DEVICE_CODE_LIFETIME),
        )
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:
            continue
        return Started(device_code, display(user_code), row)
    raise RuntimeError("could not draw a free user code")


def find_pending(typed: str, *, now: datetime) -> DeviceAuthorization | None:
    code = normalise(typed)
    if len(code) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in code):
        return None
    matches = list(DeviceAuthorization.objects.select_related("client")
                   .filter(user_code_hash__in=keyed_hash_candidates(code), status=Status.PENDING,
                           client__is_active=True)[:2])
    if len(matches) != 1:  # none, or (across a secret rotation) two: never guess which client
        return None
    return matches[0] if not matches[0].is_expired(now) else None


def decide(authorization: DeviceAuthorization, *, user: Any, auth: Any, approve: bool, now: datetime) -> bool:
    """Record the user's answer once; False when it was decided (or expired) meanwhile."""
    values: dict[str, Any] = {"status": Status.APPROVED if approve else Status.DENIED, "user": user,
                              "decided_at": now}
    if approve:
        values.update(auth_time=auth.auth_datetime, amr=list(auth.amr), acr=auth.acr, browser_sid=auth.sid,
                      login_id=auth.login_id)
    return bool(DeviceAuthorization.objects.filter(
        pk=authorization.pk, status=Status.PENDING, expires_at__gt=now
    ).update(**values))


def _of_client(device_code: Any, client: Client) -> QuerySet[DeviceAuthorization] | None:
    """The authorization of ``device_code`` if it is ``client``'s; None for a value no code can be."""
    if not isinstance(device_code, str) or len(device_code) > 256:
        return None
    return DeviceAuthorization.objects.filter(device_code_hash=token_hash(device_code), client=client)


@dataclass(frozen=True)
class Granted:
    """What a device authorization was started for: its resources (RFC 8707) and scope."""

    resources: list[str]
    scope: str


def granted_resources(device_code: str, client: Client) -> Granted | None:
    """The resources (RFC 8707) and scope the client's authorization of ``device_code`` was
    started for, whatever its state; None for an unknown code (the poll answers it). They are
    fixed at :func:`start`, so they are read without the row's lock, and reading them is no
    poll: the pace (``last_polled_at``, ``interval``) and the state are untouched."""
    found = _of_client(device_code, client)
    row = found.values_list("resource", "scope").first() if found is not None else None
    return None if row is None else Granted(resources=list(row[0]), scope=row[1])


def poll(device_code: str, client: Client, *, now: datetime, issue: Issuer, reissue: Reissuer,
         ip: str | None = None, dpop_jkt: str = "", proof_jkt: str = "", request: HttpRequest | None = None) -> Polled:
    """One poll, under the row's lock: judge the pace, then the state; redeem once (``_redeem``).
    ``dpop_jkt`` binds the family (public clients); ``proof_jkt`` is this poll's DPoP key, kept
    with the redemption whatever the client: a retry must come with the same key. A redeemed
    code is judged once the lock is released (``_poll_again``): nothing about it changes any more."""
    found = _of_client(device_code, client)
    if found is None:
        return Polled(PollOutcome.UNKNOWN)
    with transaction.atomic():
        row = _locked(found)
        if row is None:
            return Polled(PollOutcome.UNKNOWN)
        row.client = client
        outcome = _judge(row, now)
        if outcome is PollOutcome.ISSUED:
            done = _redeem(row, now=now, issue=issue, ip=ip, dpop_jkt=dpop_jkt, proof_jkt=proof_jkt)
        elif outcome is not PollOutcome.REDEEMED_ALREADY:
            return Polled(outcome)
    if outcome is PollOutcome.REDEEMED_ALREADY:
        return _poll_again(row, device_code, now=now, reissue=reissue, proof_jkt=proof_jkt, request=request)
    if isinstance(done, InvalidGrantError):
        raise done  # once the code's denial is committed
    return done


def _redeem(row: DeviceAuthorization, *, now: datetime, issue: Issuer, ip: str | None, dpop_jkt: str,
            proof_jkt: str) -> Polled | InvalidGrantError:
    """Start the family and issue, in a savepoint; the row is redeemed with what a later poll of
    the code is judged by (when, this poll's DPoP key, the family). A token policy that refuses
    the new family (risk) rolls back the family alone: the code is denied under the same lock
    (later polls: ``access_denied``, not the same refusal until the code expires), so a
    concurrent poll never finds it still approved while the refusal's record is written; the
    refusal is returned, for ``poll`` to raise once that is committed."""
    try:
        with transaction.atomic():  # a savepoint: the family and its tokens
            session = _start_session(row, ip=ip, now=now, dpop_jkt=dpop_jkt)
            issued = issue(session)
    except InvalidGrantError as error:
        description = error.description
        if not isinstance(error, KeptAfterRollback):
            raise
        DeviceAuthorization.objects.filter(pk=row.pk).update(status=Status.DENIED)
        record(EventType.OAUTH_DEVICE_AUTHORIZATION, outcome=Outcome.DENIED, reason="refused_by_policy",
               user=row.user, client_id=row.client.client_id, description=description)
        return error
    DeviceAuthorization.objects.filter(pk=row.pk).update(status=Status.REDEEMED, last_polled_at=now, redeemed_at=now,
                                                         redeemed_jkt=proof_jkt, session=session)
    return Polled(PollOutcome.ISSUED, session, issued)


def _poll_again(row: DeviceAuthorization, device_code: str, *, now: datetime, reissue: Reissuer, proof_jkt: str,
                request: HttpRequest | None) -> Polled:
    """A redeemed device code polled again (RFC 8628 §3.5 names no answer: RFC 6749 §5.2
    ``invalid_grant``), judged as a used authorization code is (``code_exchange.answer_again``):
    by its client (``_of_client``), inside the retry window after the redemption, with the
    redeeming poll's DPoP key, while the family is active and its first refresh token unused,
    it is the retry of a poll whose answer was lost: the same refresh token again with a fresh
    access (and ID) token, ``oauth.code_retried``. Anything else is reuse: refused, the family
    revoked (``device_code_reuse``), ``oauth.code_reuse``. The code of a deactivated user is
    simply not found, as an authorization code's is: nothing to retry or revoke."""
    if row.user is None or not row.user.is_active:
        return Polled(PollOutcome.REDEEMED_ALREADY)
    answered = code_exchange.answer_again(_redeemed(row, device_code), now=now, reissue=reissue,
                                          proof_jkt=proof_jkt, request=request)
    if isinstance(answered, code_exchange.Exchanged):
        return Polled(PollOutcome.ANSWERED_AGAIN, answered.session, answered.issued)
    return Polled(PollOutcome.REDEEMED_ALREADY)


def _redeemed(row: DeviceAuthorization, device_code: str) -> code_exchange.Redeemed:
    """The redeemed ``row`` as ``code_exchange`` judges a used code. A row redeemed before
    redemptions were kept (no family, no time) is judged reuse, revoking nothing."""
    family = DeviceSession.objects.filter(pk=row.session_id) if row.session_id else DeviceSession.objects.none()
    return code_exchange.Redeemed(
        raw=device_code, user=row.user, client=row.client, family=family,
        used=lambda: (row.redeemed_at, row.redeemed_jkt),  # fixed at redemption, read under the row's lock
        grant_type="device_code", reuse=Reason.DEVICE_CODE_REUSE,
    )


def count_refused_poll(device_code: str, client: Client, *, now: datetime) -> PollOutcome:
    """A poll refused as a request (a ``resource`` not granted, RFC 8707 §2.2) is still a
    poll for its pace (RFC 8628 §3.5), or a client could poll as often as it likes by adding
    a bad ``resource``. Under the row's lock it is judged as any poll (``_judge``):
    ``last_polled_at`` moves, and a pending code polled sooner than the interval earns
    ``slow_down`` and an interval 5 s longer (returned, so the client is told: §3.5's longer
    interval holds "for this and all subsequent requests", which it cannot honour unheard).
    It never redeems or denies: an approved code is only paced, whatever the outcome."""
    found = _of_client(device_code, client)
    if found is None:
        return PollOutcome.UNKNOWN
    with transaction.atomic():
        row = _locked(found)
        return PollOutcome.UNKNOWN if row is None else _judge(row, now)


def _locked(found: QuerySet[DeviceAuthorization]) -> DeviceAuthorization | None:
    return found.select_for_update(of=("self",)).select_related("user").first()


def _judge(row: DeviceAuthorization, now: datetime) -> PollOutcome:
    """RFC 8628 §3.5, in order: used, expired, too fast, denied, pending, approved."""
    if row.status == Status.REDEEMED:
        return PollOutcome.REDEEMED_ALREADY
    if row.is_expired(now) or (row.user is not None and not row.user.is_active):
        return PollOutcome.EXPIRED
    too_fast = row.last_polled_at is not None and now - row.last_polled_at < timedelta(seconds=row.interval)
    update: dict[str, Any] = {"last_polled_at": now}
    if too_fast and row.status == Status.PENDING:
        update["interval"] = row.interval + SLOW_DOWN_STEP
    DeviceAuthorization.objects.filter(pk=row.pk).update(**update)
    if row.status == Status.DENIED:
        return PollOutcome.DENIED
    if row.status == Status.PENDING:
        return PollOutcome.SLOW_DOWN if too_fast else PollOutcome.PENDING
    return PollOutcome.ISSUED


def _start_session(row: DeviceAuthorization, *, ip: str | None, now: datetime, dpop_jkt: str) -> DeviceSession:
    """The family of an approved device authorization (no authorization code, no nonce)."""
    assert row.user is not None and row.auth_time is not None
    session = DeviceSession(
        sid=generate_token(16), user=row.user, client=row.client, browser_sid=row.browser_sid,
        login_id=row.login_id, scope=row.scope,
        resource=list(row.resource), auth_time=row.auth_time, amr=list(row.amr), acr=row.acr,
        dpop_jkt=dpop_jkt, created_at=now, last_refresh_at=now, last_ip=ip, last_place=place_of(ip),
    )
    insert([session])
    return session
