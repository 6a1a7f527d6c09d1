"""ID token and userinfo claims (OIDC Core §2, §3.1.3.6, §5.1, §5.4)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from core import jwt_tokens
from core.app_settings import app_settings

if TYPE_CHECKING:
    from accounts.models import User
    from clients.models import Client
    from sessions.models import DeviceSession

SCOPE_CLAIMS = {
    "profile": ["name", "given_name", "family_name", "preferred_username", "updated_at"],
    "email": ["email", "email_verified"],
}


def userinfo_claims(user: User, scope: str) -> dict[str, Any]:
    scopes = set((scope or "").split())
    claims: dict[str, Any] = {"sub": user.get_user_id()}
    if "profile" in scopes:
        claims["preferred_username"] = user.get_username()
        full = user.get_full_name()
        if full:
            claims["name"] = full
        if user.first_name:
            claims["given_name"] = user.first_name
        if user.last_name:
            claims["family_name"] = user.last_name
    if "email" in scopes and user.email:
        claims["email"] = user.email
        claims["email_verified"] = bool(user.email_verified)
    return claims


class IdTokenClaims:
    def build(
        self, session: DeviceSession, access_token: str | None, client: Client, now: datetime | None = None,
        scope: str | None = None,
    ) -> dict[str, Any]:
        """``scope``: the scope of the access token issued beside it (narrower than the session's
        when a token policy reduced it, docs/device-health.md); the session's by default."""
        moment = int((now or timezone.now()).timestamp())
        claims: dict[str, Any] = {
            "iss": app_settings.ISSUER,
            "sub": session.user.get_user_id(),
            "aud": client.client_id,
            "azp": client.client_id,
            "iat": moment,
            "exp": moment + app_settings.ID_TOKEN_LIFETIME,
            "auth_time": int(session.auth_time.timestamp()),
            "acr": session.acr,
            "amr": list(session.amr),
            "sid": session.sid,
        }
        if session.nonce:
            claims["nonce"] = session.nonce
        if access_token:
            claims["at_hash"] = jwt_tokens.half_hash(access_token, client.signing_alg)
        # Profile claims go in the ID token too (no separate userinfo round trip needed).
        granted = session.scope if scope is None else scope
        claims.update({k: v for k, v in userinfo_claims(session.user, granted).items() if k != "sub"})
        return claims

    def encode(
        self, session: DeviceSession, access_token: str | None, client: Client, now: datetime | None = None,
        scope: str | None = None,
    ) -> str:
        claims = self.build(session, access_token, client, now, scope)
        return jwt_tokens.sign(claims, alg=client.signing_alg, now=now)


id_token_claims = IdTokenClaims()
