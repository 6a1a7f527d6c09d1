"""Logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4), signed with our keys.

A logout token is a JWT with ``typ: logout+jwt`` (§2.4, as the spec recommends since
errata 1), signed with the client's ID token algorithm, carrying ``iss``, ``aud`` (the
client), ``iat``, ``exp``, ``jti``, the ``events`` member
``http://schemas.openid.net/event/backchannel-logout`` with an empty object, ``sub`` and
``sid`` (the ``sid`` of the ID tokens of that session, OIDC Core §2 / Front-Channel Logout
§3). It never carries ``nonce`` (§2.4: prohibited).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core import jwt_tokens
from core.app_settings import app_settings
from core.crypto import generate_token
from sessions.models import DeviceSession

EVENT = "http://schemas.openid.net/event/backchannel-logout"
TYP = "logout+jwt"
#: Seconds a logout token stays valid: §2.4 recommends a short lifetime (two minutes).
LIFETIME = 120


def claims_for(session: DeviceSession, *, now: datetime) -> dict[str, Any]:
    """The claims of the logout token for ``session`` (§2.4)."""
    iat = int(now.timestamp())
    return {
        "iss": app_settings.ISSUER,
        "sub": session.user.get_user_id(),
        "aud": session.client.client_id,
        "iat": iat,
        "exp": iat + LIFETIME,
        "jti": generate_token(16),
        "events": {EVENT: {}},
        "sid": session.sid,
    }


def sign(session: DeviceSession, *, now: datetime) -> str:
    """The signed logout token, with the client's ID token algorithm and our active key."""
    return jwt_tokens.sign(claims_for(session, now=now), alg=session.client.signing_alg, typ=TYP, now=now)
