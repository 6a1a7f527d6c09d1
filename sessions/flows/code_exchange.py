"""Redeeming an authorization code (RFC 6749 §4.1.3): find, judge, claim once, start the
family, record.

A code is stored as a hash and claimed under one conditional UPDATE, so of two concurrent
exchanges exactly one wins. A code used twice is refused and revokes what its first use
issued (RFC 6749 §4.1.2). Each step returns one typed result: :class:`Exchanged` or
:class:`CodeReused`; an expired code, or one of an inactive user, is simply not found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest

from clients.models import Client
from core.crypto import generate_token, token_digest
from core.events import EventType, record
from core.sql import JoinedQuery, Part, Statement, insert
from sessions.models import AuthorizationCode

from ..models import DeviceSession
from . import exchange_statement
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


ExchangeResult = Exchanged | CodeReused
#: Issues the tokens of the new family, inside the claim's transaction.
Issuer = Callable[[DeviceSession], IssuedTokens]

# The code with its user, by hash and client: one statement built once (core/sql.py).
_CODE_QUERY = JoinedQuery(
    lambda: [Part(AuthorizationCode, "c"), Part(get_user_model(), "u", on="u.id = c.user_id", parent="c", attr="user")],
    where="c.code_hash = %s AND c.client_id = %s",
)
# Claiming is one conditional UPDATE: of two concurrent exchanges exactly one wins.
_CLAIM_CODE = Statement(AuthorizationCode, "UPDATE {table} SET used_at = %s WHERE id = %s AND used_at IS NULL",
                        ["used_at", "id"])


def judge(code: AuthorizationCode, *, now: datetime) -> bool | None:
    """Pure: True when ``code`` may be exchanged, False when it was used already (reuse),
    None when it is no longer good (expired, or its user was deactivated)."""
    if code.used_at is not None:
        return False
    if code.is_expired(now) or not code.user.is_active:
        return None
    return True


def find(
    raw: str, client: Client, *, now: datetime, request: HttpRequest | None
) -> AuthorizationCode | CodeReused | None:
    """The code of that value issued to ``client`` when it may be exchanged; its reuse
    (acted on and recorded); or None."""
    if not isinstance(raw, str) or len(raw) > 512:
        return None
    found = _CODE_QUERY.first([token_digest(raw), client.pk])
    if found is None:
        return None
    code = found["c"]
    assert isinstance(code, AuthorizationCode)
    code.client = client
    verdict = judge(code, now=now)
    if verdict is False:
        return refuse_reuse(code, now=now, request=request)
    return code if verdict else None


def exchange(
    code: AuthorizationCode,
    *,
    now: datetime,
    issue: Issuer,
    ip: str | None = None,
    dpop_jkt: str = "",
    device: Any = None,
    request: HttpRequest | None = None,
) -> ExchangeResult:
    """Claim ``code`` and start its family, issuing in the same transaction; a code claimed
    in the meantime is reuse. ``dpop_jkt`` binds the family's refresh tokens (RFC 9449 §5,
    public clients) and ``device`` the attested device (docs/attestation.md §3). On
    PostgreSQL the common case is one statement (``exchange_statement``)."""
    if exchange_statement.applicable():
        done = exchange_statement.exchange(
            code, now=now, issue=issue, request=request,
            begin=lambda: start_session(code, ip=ip, now=now, dpop_jkt=dpop_jkt, device=device),
        )
        if done is False:
            return refuse_reuse(code, now=now, request=request)
        if isinstance(done, tuple):
            return Exchanged(*done)
    with transaction.atomic():
        claimed = _CLAIM_CODE.run(now, code.pk)
        if claimed:
            session = start_session(code, ip=ip, now=now, dpop_jkt=dpop_jkt, device=device)
            issued = issue(session)
    if not claimed:
        return refuse_reuse(code, now=now, request=request)
    record(
        EventType.OAUTH_TOKEN_ISSUED,
        user=code.user,
        client_id=code.client.client_id,
        session_id=session.sid,
        request=request,
        grant_type="authorization_code",
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


def refuse_reuse(code: AuthorizationCode, *, now: datetime, request: HttpRequest | None) -> CodeReused:
    """RFC 6749 §4.1.2: a code used twice revokes what the first use issued; recorded."""
    session = DeviceSession.objects.filter(authorization_code=code).select_related("client", "user").first()
    if session is not None:
        revoke_session(session, Reason.CODE_REUSE, now=now)
    record(
        EventType.OAUTH_CODE_REUSE,
        outcome="denied",
        reason="authorization_code_reuse",
        user=code.user,
        client_id=code.client.client_id,
        request=request,
    )
    return CodeReused(code)
