"""Redeeming an authorization code (RFC 6749 §4.1.3): find, judge, claim once, start the
family, record.

A code is stored as a hash and claimed under one conditional UPDATE, so of two concurrent
exchanges exactly one wins. A used code is judged only once the request has passed every
check its first exchange had to (client, redirect URI, PKCE verifier, DPoP key binding): a
thief holding only the code can neither burn it nor have its family revoked (a device code,
RFC 8628, is the device's only proof: whoever presents it again outside a retry has it, and
its family is revoked as reuse, as a refresh token's is). Presented
again so, it is either the retry of an exchange whose answer was lost (``redeem_again``: the
same first refresh token again, derived from the code like a rotation's successor) or reuse,
refused, revoking what its first use issued (RFC 6749 §4.1.2). Each step returns one typed
result: :class:`Exchanged`, :class:`AlreadyRedeemed` or :class:`CodeReused`; an expired
unused code, or one of an inactive user, is simply not found.

The judgement of a code presented again (``answer_again``: ``judge_again``, the answer,
``refuse_reuse``) is the same for every single-use code that starts a family: it takes a
:class:`Redeemed`, which the device code grant (RFC 8628 §3.4,
``idp.flows.device_authorization``) builds for its device codes as ``redeem_again`` does here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from hmac import compare_digest
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from clients.models import Client
from core.crypto import first_refresh_candidates, generate_token, token_digest
from core.events import EventType, Outcome, record
from core.policy import GrantType, KeptAfterRollback
from core.sql import JoinedQuery, Part, Statement, insert
from sessions.models import AuthorizationCode

from ..models import DeviceSession, RefreshToken, SessionStatus
from . import exchange_statement
from .grace import grace_seconds
from .revocation import Reason, revoke_session
from .tokens import IssuedTokens, place_of


@dataclass(frozen=True)
class Exchanged:
    """The code was claimed: the new family and what was issued for it."""

    session: DeviceSession
    issued: IssuedTokens


@dataclass(frozen=True)
class CodeReused:
    """The code had been used already: what its first use issued is revoked, and recorded."""

    code: AuthorizationCode


@dataclass(frozen=True)
class AlreadyRedeemed:
    """A retry inside the window that cannot be answered again: the family is bound to the
    device its enrollment attested, and that evidence was single-use. Nothing is revoked."""

    code: AuthorizationCode


ExchangeResult = Exchanged | AlreadyRedeemed | CodeReused
#: Issues the tokens of the new family, inside the claim's transaction (its first refresh
#: token is ``first_refresh_token(code)``).
Issuer = Callable[[DeviceSession], IssuedTokens]
#: Issues an access (and ID) token for the family again, no refresh token.
Reissuer = Callable[[DeviceSession], IssuedTokens]


class Again(StrEnum):
    """What a used code presented again, with every proof, is (``judge_again``)."""

    ANSWER = "answer"  # the retry of a lost answer: the same first refresh token again
    UNANSWERABLE = "device_bound"  # a retry, but the family's device evidence was single-use
    REUSE = "reuse"


@dataclass(frozen=True)
class Redeemed:
    """A single-use code that started a family, presented again by its client with every proof
    its first redemption needed: an authorization code (RFC 6749 §4.1.3) or a device code
    (RFC 8628 §3.4). What ``answer_again`` needs, whatever the grant."""

    raw: str  # the code's value: its family's first refresh token is ``first_refresh_token(raw)``
    user: Any
    client: Client
    family: QuerySet[DeviceSession]  # the family its redemption started (none found: reuse)
    # When, and with which DPoP key (""), it was redeemed: read under the family's lock, as committed.
    used: Callable[[], tuple[datetime | None, str]]
    grant_type: str  # the events' ``grant_type`` (the device grant's short name, as its other events)
    reuse: Reason  # why its family is revoked when it is presented again as reuse

# The code with its user, by hash and client: one statement built once (core/sql.py).
_CODE_QUERY = JoinedQuery(
    lambda: [Part(AuthorizationCode, "c"), Part(get_user_model(), "u", on="u.id = c.user_id", parent="c", attr="user")],
    where="c.code_hash = %s AND c.client_id = %s",
)
# Claiming is one conditional UPDATE: of two concurrent exchanges exactly one wins.
_CLAIM_CODE = Statement(
    AuthorizationCode, "UPDATE {table} SET used_at = %s, exchanged_jkt = %s WHERE id = %s AND used_at IS NULL",
    ["used_at", "exchanged_jkt", "id"],
)


def judge(code: AuthorizationCode, *, now: datetime) -> bool | None:
    """Pure: True when ``code`` may be exchanged, False when it was used already (reuse),
    None when it is no longer good (expired, or its user was deactivated)."""
    if not code.user.is_active:  # whatever the code's state: its user can be given nothing
        return None
    if code.used_at is not None:
        return False
    if code.is_expired(now):
        return None
    return True


def find(raw: str, client: Client, *, now: datetime) -> AuthorizationCode | None:
    """The code of that value issued to ``client`` when it may be exchanged, or was already
    (``used_at`` set: judged by ``redeem_again`` once the request's proofs passed); else None."""
    if not isinstance(raw, str) or len(raw) > 512:
        return None
    found = _CODE_QUERY.first([token_digest(raw), client.pk])
    if found is None:
        return None
    code = found["c"]
    assert isinstance(code, AuthorizationCode)
    code.client = client
    return code if judge(code, now=now) is not None else None


def exchange(
    code: AuthorizationCode,
    raw: str,
    *,
    now: datetime,
    issue: Issuer,
    reissue: Reissuer,
    ip: str | None = None,
    dpop_jkt: str = "",
    proof_jkt: str = "",
    device: Any = None,
    request: HttpRequest | None = None,
) -> ExchangeResult:
    """Claim ``code`` (whose value is ``raw``) and start its family, issuing in the same
    transaction; a code claimed in the meantime (a concurrent exchange, or the first attempt
    of a retry) is judged by ``redeem_again``. ``dpop_jkt`` binds the family's refresh tokens
    (RFC 9449 §5, public clients) and ``device`` the attested device (docs/attestation.md §3);
    ``proof_jkt`` is the key of this request's DPoP proof, whatever the client (kept with the
    claim: a retry must come with the same key).
    On PostgreSQL the common case is one statement (``exchange_statement``)."""
    if code.used_at is not None:
        return redeem_again(code, raw, now=now, reissue=reissue, proof_jkt=proof_jkt, request=request)
    if exchange_statement.applicable():
        done = exchange_statement.exchange(
            code, now=now, issue=issue, request=request, proof_jkt=proof_jkt,
            begin=lambda: start_session(code, ip=ip, now=now, dpop_jkt=dpop_jkt, device=device),
        )
        if done is False:
            return redeem_again(code, raw, now=now, reissue=reissue, proof_jkt=proof_jkt, request=request)
        if isinstance(done, tuple):
            return Exchanged(*done)
    with transaction.atomic():
        claimed = _CLAIM_CODE.run(now, proof_jkt, code.pk)
        if claimed:
            session = start_session(code, ip=ip, now=now, dpop_jkt=dpop_jkt, device=device)
            issued = issue(session)
    if not claimed:
        return redeem_again(code, raw, now=now, reissue=reissue, proof_jkt=proof_jkt, request=request)
    record(
        EventType.OAUTH_TOKEN_ISSUED,
        user=code.user,
        client_id=code.client.client_id,
        session_id=session.sid,
        request=request,
        grant_type=GrantType.AUTHORIZATION_CODE,
        jti=issued.jti,
    )
    return Exchanged(session, issued)


def start_session(
    code: AuthorizationCode, *, ip: str | None, now: datetime, dpop_jkt: str = "", device: Any = None
) -> DeviceSession:
    """A new family for a redeemed authorization code."""
    session = DeviceSession(
        sid=generate_token(16),
        user=code.user,
        client=code.client,
        authorization_code=code,
        browser_sid=code.browser_sid,
        login_id=code.login_id,
        scope=code.scope,
        resource=list(code.resource),
        auth_time=code.auth_time,
        amr=list(code.amr),
        acr=code.acr,
        nonce=code.nonce,
        dpop_jkt=dpop_jkt or "",
        device=device,
        created_at=now,
        last_refresh_at=now,
        last_ip=ip,
        last_place=place_of(ip),
    )
    insert([session])
    return session


def judge_again(
    used_at: datetime | None, used_jkt: str, session: DeviceSession | None, first_live: bool, *, now: datetime,
    proof_jkt: str,
) -> Again:
    """Pure: a used code presented again with every proof. A retry when its family
    (``session``) is active, the code was used (``used_at``) inside the retry window (the
    refresh grace, ``grace.grace_seconds``; none for a FAPI 2.0 client, whose profile denies
    every second use), this request carries the DPoP key the redemption that used it carried
    (``used_jkt``: a code's ``exchanged_jkt``; none both times counts as the same), and the
    family's chain has not moved on (``first_live``: its first refresh token unused, or it
    issues none); answerable unless the family is bound to a device. Anything else is reuse."""
    if session is None or session.status != SessionStatus.ACTIVE or used_at is None or not first_live:
        return Again.REUSE
    grace = 0 if session.client.is_fapi2 else grace_seconds(session)
    if grace <= 0 or now - used_at > timedelta(seconds=grace):  # 0: strict, every second exchange
        return Again.REUSE
    if not compare_digest(used_jkt or "", proof_jkt or ""):
        return Again.REUSE  # another key than the first exchange's: not the same client instance
    return Again.UNANSWERABLE if session.device_id is not None else Again.ANSWER


def redeem_again(
    code: AuthorizationCode, raw: str, *, now: datetime, reissue: Reissuer, proof_jkt: str,
    request: HttpRequest | None,
) -> ExchangeResult:
    """A used authorization code presented again by its client with every proof its first
    exchange needed: answered again, or refused (``answer_again``)."""
    answered = answer_again(_redeemed(code, raw), now=now, reissue=reissue, proof_jkt=proof_jkt, request=request)
    if isinstance(answered, Exchanged):
        return answered
    return AlreadyRedeemed(code) if answered is Again.UNANSWERABLE else CodeReused(code)


def _redeemed(code: AuthorizationCode, raw: str) -> Redeemed:
    def used() -> tuple[datetime | None, str]:
        # As committed (a concurrent exchange may have used it after this request's look-up).
        code.used_at, code.exchanged_jkt = AuthorizationCode.objects.filter(pk=code.pk).values_list(
            "used_at", "exchanged_jkt").get()
        return code.used_at, code.exchanged_jkt

    return Redeemed(raw=raw, user=code.user, client=code.client,
                    family=DeviceSession.objects.filter(authorization_code=code), used=used,
                    grant_type=GrantType.AUTHORIZATION_CODE, reuse=Reason.CODE_REUSE)


def answer_again(
    redeemed: Redeemed, *, now: datetime, reissue: Reissuer, proof_jkt: str, request: HttpRequest | None,
) -> Exchanged | Again:
    """A used code presented again by its client with every proof its first redemption needed.
    Judged under the family's lock (the order revocation takes: family, then its tokens), so a
    concurrent refresh cannot move the chain on in between: a retry gets the family's first
    refresh token again with a fresh access (and ID) token, recorded ``oauth.code_retried``
    (:class:`Exchanged`); a retry of a device-bound family is refused, recorded, nothing revoked
    (``Again.UNANSWERABLE``); anything else is reuse (``refuse_reuse``, ``Again.REUSE``). A
    policy refusing the retry (risk, device health) ends the family it would have continued,
    once its transaction rolled back: the refusal was decided about that family."""
    candidates = first_refresh_candidates(redeemed.raw)
    with transaction.atomic():
        session = redeemed.family.select_for_update(of=("self",)).select_related("client", "user").first()
        used_at, used_jkt = redeemed.used()
        first = None
        if session is not None:
            first = (RefreshToken.objects.filter(session=session, rotated_at=None, revoked_at=None,
                                                 expires_at__gt=now,
                                                 token_hash__in=[token_digest(c) for c in candidates])
                     .values_list("token_hash", flat=True).first())
        issues_none = session is not None and not session.client.check_grant_type(GrantType.REFRESH_TOKEN)
        verdict = judge_again(used_at, used_jkt, session, first is not None or issues_none, now=now,
                              proof_jkt=proof_jkt)
        if verdict is Again.ANSWER and session is not None:
            try:
                issued = reissue(session)
            except Exception as refused:
                if isinstance(refused, KeptAfterRollback):  # a policy's refusal (risk, device health)
                    ended = session

                    def end_family() -> None:
                        revoke_session(ended, Reason.CODE_RETRY_REFUSED, now=now)

                    refused.keep_after_rollback(end_family)
                raise
            if first is not None:
                issued.refresh_token = next(c for c in candidates if token_digest(c) == bytes(first))
            record(EventType.OAUTH_CODE_RETRIED, user=session.user, client_id=session.client.client_id,
                   session_id=session.sid, request=request, grant_type=redeemed.grant_type, jti=issued.jti)
            return Exchanged(session, issued)
    if verdict is Again.UNANSWERABLE and session is not None:
        record(EventType.OAUTH_CODE_RETRIED, outcome=Outcome.DENIED, reason=verdict.value, user=session.user,
               client_id=session.client.client_id, session_id=session.sid, request=request)
        return verdict
    refuse_reuse(redeemed, now=now, request=request)
    return Again.REUSE


def refuse_reuse(redeemed: Redeemed, *, now: datetime, request: HttpRequest | None) -> None:
    """RFC 6749 §4.1.2 (a device code: RFC 8628 §3.5, RFC 6749 §5.2 ``invalid_grant``): a code
    used twice revokes what the first use issued; recorded."""
    session = redeemed.family.select_related("client", "user").first()
    if session is not None:
        revoke_session(session, redeemed.reuse, now=now)
    record(
        EventType.OAUTH_CODE_REUSE,
        outcome=Outcome.DENIED,
        reason=redeemed.reuse.value,
        user=redeemed.user,
        client_id=redeemed.client.client_id,
        request=request,
        grant_type=redeemed.grant_type,
    )
