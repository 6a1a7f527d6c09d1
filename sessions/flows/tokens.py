"""Issuing and storing the tokens of a session family (RFC 9068 access tokens, hashed
refresh tokens), and ending the families of a browser login.

The lifecycles that use these live beside them: ``refresh`` (find, judge, rotate, revoke,
record a refresh token) and ``code_exchange`` (redeem an authorization code). A family ends
by the one path, ``revocation.revoke_session`` (also importable from here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from clients.models import Client
from core import jwt_tokens
from core.app_settings import app_settings as idp_settings
from core.crypto import generate_token, token_digest
from core.sql import insert

from ..models import AccessToken, DeviceSession, RefreshToken
from .revocation import revoke_session


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
    """Store a refresh token of the family: ``raw`` (a rotation's derived successor, or the
    first token an authorization code derives) or a new random one. Only its hash is kept."""
    raw = raw or generate_token(48)
    insert([RefreshToken(
        token_hash=token_digest(raw),
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


def revoke_browser_login(browser_sid: str, reason: str, *, now: datetime | None = None) -> int:
    """Signing out of a browser login revokes the app sessions born from it (Keycloak's
    SSO-session semantics). Returns how many families were revoked."""
    if not browser_sid:
        return 0
    revoked = 0
    for session in DeviceSession.objects.active().filter(browser_sid=browser_sid).select_related("client", "user"):
        revoked += int(revoke_session(session, reason, now=now))
    return revoked
