"""Issuing, rotating and revoking tokens of a session family.

The token endpoint's grants call these; they own the transactions. A refresh token is
rotated under a row lock; presenting one that was already rotated is reuse and revokes
the family (RFC 9700 §4.14.2), except a retry: inside the grace window, while its successor
is unused, the immediate predecessor gets that same successor again (a response lost on a
mobile network). A token's successor is derived from it (``core.crypto.successor_token``), so
a family never holds more than one live refresh token, however often it is retried.
A family ends by the one path, ``revocation.revoke_session`` (also importable from here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.db import transaction

from core import config_cache, jwt_tokens
from core.app_settings import app_settings as idp_settings
from core.crypto import generate_token, successor_candidates, successor_token, token_hash
from sessions.models import AuthorizationCode
from clients.models import Client
from core.sql import JoinedQuery, Part, Statement, insert

from ..models import AccessToken, DeviceSession, RefreshToken, SessionStatus
from .revocation import Reason, revoke_session


@dataclass
class IssuedTokens:
    access_token: str
    expires_in: int
    scope: str
    jti: str
    refresh_token: str | None = None
    token_type: str = "Bearer"
    extra: dict[str, Any] = field(default_factory=dict)

    def as_response(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        body.update(self.extra)
        return body


def issue_access_token(
    *,
    client: Client,
    user: Any,
    scope: str,
    audience: list[str],
    session: DeviceSession | None,
    now: datetime,
    lifetime: int | None = None,
    cnf_jkt: str | None = None,
    extra_claims: dict[str, Any] | None = None,
) -> tuple[str, str, int]:
    """Sign an RFC 9068 access token and record its ``jti``. Returns ``(jwt, jti, expires_in)``."""
    expires_in = lifetime or client.get_access_token_lifetime()
    jti = generate_token(16)
    iat = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": idp_settings.ISSUER,
        "sub": user.get_user_id() if user is not None else client.client_id,
        "aud": audience if len(audience) != 1 else audience[0],
        "exp": iat + expires_in,
        "iat": iat,
        "jti": jti,
        "client_id": client.client_id,
        "scope": scope,
    }
    if session is not None:
        claims.update(
            auth_time=int(session.auth_time.timestamp()), acr=session.acr, amr=list(session.amr), sid=session.sid
        )
    if cnf_jkt:
        claims["cnf"] = {"jkt": cnf_jkt}
    for name, value in (extra_claims or {}).items():
        claims.setdefault(name, value)
    token = jwt_tokens.sign(claims, alg=client.signing_alg, typ="at+jwt", now=now)
    insert([AccessToken(
        jti=jti,
        session=session,
        client=client,
        user=user,
        scope=scope,
        audience=audience,
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in),
    )])
    return token, jti, expires_in


def issue_refresh_token(session: DeviceSession, scope: str, now: datetime, *, raw: str | None = None) -> str:
    """Store a refresh token of the family: ``raw`` (a rotation's derived successor) or a new
    random one (the first of a family). Only its hash is kept."""
    raw = raw or generate_token(48)
    insert([RefreshToken(
        token_hash=token_hash(raw),
        session=session,
        scope=scope,
        created_at=now,
        expires_at=now + timedelta(seconds=session.client.get_refresh_token_lifetime()),
    )])
    return raw


def place_of(ip: str | None) -> str:
    """"City, CC" of an address from the offline GeoIP database; empty when unknown or private."""
    from risk.geo import locate

    where = locate(ip)
    if where is None:
        return ""
    return ", ".join(part for part in (where.city, where.country) if part)[:120]


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


def _refresh_token_parts() -> list[Part]:
    from django.contrib.auth import get_user_model

    from attestation.models import Device
    from device_health.models import DeviceHealth

    from risk.models import DeviceRiskState

    return [
        Part(RefreshToken, "t"),
        Part(DeviceSession, "s", on="s.id = t.session_id", parent="t", attr="session"),
        Part(get_user_model(), "u", on="u.id = s.user_id", parent="s", attr="user"),
        Part(Device, "d", on="d.id = s.device_id", parent="s", attr="device", outer=True),
        # The device's last health evaluation and last Play Integrity level: the health and risk
        # policies decide from them without a query of their own.
        Part(DeviceHealth, "h", on="h.device_id = d.id", parent="d", attr="health", outer=True),
        Part(DeviceRiskState, "r", on="r.device_id = d.id", parent="d", attr="risk_state", outer=True),
    ]


_REFRESH_TOKEN_QUERY = JoinedQuery(_refresh_token_parts, where="t.token_hash = %s")


def find_refresh_token(raw: str, client: Client | None = None) -> RefreshToken | None:
    """The token of that raw value with its session, user and device: one indexed query,
    its SQL built once. Given the already authenticated ``client``, its row is not read
    again: the session gets that client when it is the session's own (anything else is
    refused by the caller), and the device its registered app from the config cache."""
    if not isinstance(raw, str) or not raw or len(raw) > 512:
        return None
    found = _REFRESH_TOKEN_QUERY.first([token_hash(raw)])
    if found is None:
        return None
    token, session = found["t"], found["s"]
    assert isinstance(token, RefreshToken) and isinstance(session, DeviceSession)
    if client is not None and session.client_id == client.pk:
        session.client = client
    if session.device is not None:
        session.device.app = registered_app(session.device.app_id)
    return token


def registered_app(app_id: int) -> Any:
    """A registered app with its client, from the config cache."""
    from attestation.models import RegisteredApp

    return config_cache.cached(
        ("registered-app", app_id), lambda: RegisteredApp.objects.select_related("client").get(pk=app_id)
    )


class Refusal(StrEnum):
    """Why a presented refresh token gets no tokens (``oauth.refresh_refused`` reasons)."""

    REUSE = "reuse"
    REVOKED = "revoked"
    EXPIRED = "expired"
    STEP_UP_REQUIRED = "step_up_required"


class RefreshRefused(Exception):
    def __init__(self, reason: Refusal):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Rotation:
    """A refresh that went through: the family, its one live refresh token, and whether this
    was a retry (the presented token had already been rotated to that same successor)."""

    session: DeviceSession
    refresh_token: str
    retried: bool = False


_TOUCH_ACTIVE_SESSION = Statement(
    DeviceSession,
    "UPDATE {table} SET last_refresh_at = %s, last_ip = %s, last_place = %s WHERE id = %s AND status = %s",
    ["last_refresh_at", "last_ip", "last_place", "id", "status"],
)
_MARK_ROTATED = Statement(
    RefreshToken,
    "UPDATE {table} SET rotated_at = %s WHERE id = %s AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > %s",
    ["rotated_at", "id", "expires_at"],
)


def rotate(presented: RefreshToken, raw: str, *, now: datetime, ip: str | None = None) -> Rotation:
    """Mark ``presented`` (whose value is ``raw``) used and store its successor, under the
    session's row lock, in the caller's transaction.

    The successor is derived from ``raw``: a retry of a just-rotated token inside the grace
    window, while that successor is unused, returns the same successor and stores nothing
    new, so any number of retries or concurrent presentations leave one live token. Any
    other presentation of a rotated token is reuse: ``RefreshRefused(REUSE)``, and the
    caller revokes the family (RFC 9700 §4.14.2).
    """
    # No savepoint: the grant's transaction around this rolls back as a whole on any refusal.
    with transaction.atomic(savepoint=False):
        session = presented.session
        place = place_of(ip)
        # Lock order everywhere: the session row first, then its tokens (no deadlocks with
        # revocation). Locking it is the write a refresh makes anyway, conditional on the
        # family still being active. It also serialises every rotation of the family, so the
        # judgements below see the family as it is.
        if not _TOUCH_ACTIVE_SESSION.run(now, ip, place, session.pk, SessionStatus.ACTIVE):
            # Not active (or gone, e.g. its user was deleted a moment ago): say which.
            status = DeviceSession.objects.filter(pk=session.pk).values_list("status", flat=True).first()
            session.status = status or SessionStatus.REVOKED
            stepped = status == SessionStatus.STEP_UP_REQUIRED
            raise RefreshRefused(Refusal.STEP_UP_REQUIRED if stepped else Refusal.REVOKED)
        session.last_refresh_at, session.last_ip, session.last_place = now, ip, place
        # The common case in one conditional UPDATE; any other state is sorted out below, under the lock.
        if _MARK_ROTATED.run(now, presented.pk, now):
            return Rotation(session, issue_refresh_token(session, presented.scope, now, raw=successor_token(raw)))
        return Rotation(session, _rotate_unusual(session, presented.pk, raw, now), retried=True)


def _rotate_unusual(session: DeviceSession, token_pk: int, raw: str, now: datetime) -> str:
    """The presented token was not a live, unused one: refuse it, or (a retry of the immediate
    predecessor inside the grace window) return the successor it already has."""
    token = RefreshToken.objects.select_for_update().filter(pk=token_pk).first()
    if token is None:  # purged since the lookup (it had expired)
        raise RefreshRefused(Refusal.EXPIRED)
    token.session = session
    if token.revoked_at is not None:
        # Its family is active (the session row was just touched): only the retired grace
        # retry, which revoked the successor it replaced, left such a token. Presenting it
        # is reuse (issue 12): the family goes, whoever holds the other chain.
        raise RefreshRefused(Refusal.REUSE)
    if token.is_expired(now):
        raise RefreshRefused(Refusal.EXPIRED)
    successor = retry_successor(token, raw, now)
    if successor is None:
        raise RefreshRefused(Refusal.REUSE)
    return successor


def grace_seconds(session: DeviceSession) -> int:
    """How long after its rotation a refresh token may be presented again for the same
    successor. Device-bound families get a longer window by default: every refresh carries
    fresh attestation from the enrolled device, so re-presenting the predecessor after a lost
    response proves possession of the device, not just of a leaked token."""
    from ..app_settings import app_settings as sessions_settings

    grace = idp_settings.REFRESH_TOKEN_GRACE_SECONDS
    if session.device_id is not None:
        grace = max(grace, sessions_settings.DEVICE_BOUND_REFRESH_GRACE_SECONDS)
    return grace


def within_grace(token: RefreshToken, now: datetime) -> bool:
    """Whether the rotated ``token`` was rotated inside the grace window (time alone)."""
    grace = grace_seconds(token.session)
    if grace <= 0 or token.rotated_at is None:
        return False
    return now - token.rotated_at <= timedelta(seconds=grace)


def retry_successor(token: RefreshToken, raw: str, now: datetime) -> str | None:
    """The successor to hand out again when the rotated ``token`` (value ``raw``) is presented
    once more: only inside the grace window and only while that successor is live and unused
    (once it was used, the chain moved on and this is reuse). ``None``: this is reuse. One
    indexed query."""
    if not within_grace(token, now):
        return None
    candidates = {token_hash(value): value for value in successor_candidates(raw)}
    successor = (
        RefreshToken.objects.filter(session_id=token.session_id, token_hash__in=list(candidates))
        .values_list("token_hash", "rotated_at", "revoked_at", "expires_at")
        .first()
    )
    if successor is None:  # e.g. rotated before successors were derived: no retry to offer
        return None
    stored_hash, rotated_at, revoked_at, expires_at = successor
    if rotated_at is not None or revoked_at is not None or expires_at <= now:
        return None
    return candidates[stored_hash]


def revoke_browser_login(browser_sid: str, reason: str, *, now: datetime | None = None) -> int:
    """Signing out of a browser login revokes the app sessions born from it (Keycloak's
    SSO-session semantics). Returns how many families were revoked."""
    if not browser_sid:
        return 0
    revoked = 0
    for session in DeviceSession.objects.active().filter(browser_sid=browser_sid).select_related("client", "user"):
        revoked += int(revoke_session(session, reason, now=now))
    return revoked


def revoke_for_code_reuse(code: AuthorizationCode, *, now: datetime) -> None:
    """RFC 6749 §4.1.2: a code used twice revokes what the first use issued."""
    session = DeviceSession.objects.filter(authorization_code=code).select_related("client", "user").first()
    if session is not None:
        revoke_session(session, Reason.CODE_REUSE, now=now)
