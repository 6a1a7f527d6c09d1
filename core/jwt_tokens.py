"""Signing and verifying our own JWTs (access tokens per RFC 9068, ID tokens per OIDC Core).

Verification always uses an explicit algorithm list and looks the key up by ``kid``
among published keys only: ``alg: none``, HMAC-with-public-key and unknown ``kid`` all fail.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from django.utils import timezone
from joserfc import jwt
from joserfc.errors import JoseError

from . import keys
from .app_settings import app_settings
from .encoding import b64url_decode_padded, b64url_encode


class TokenInvalid(Exception):
    """The JWT is malformed, wrongly signed, expired or not ours."""


class TokenExpired(TokenInvalid):
    """The JWT is ours and well formed, but past its ``exp`` (RFC 7519 §4.1.4)."""


def sign(claims: dict[str, Any], *, alg: str, typ: str = "JWT", now: datetime | None = None) -> str:
    kid, key = keys.active_key(alg, now)
    return jwt.encode({"alg": alg, "typ": typ, "kid": kid}, claims, key, algorithms=[alg])


def half_hash(value: str, alg: str) -> str:
    """``at_hash``/``c_hash``: left half of the hash matching the JWS alg (OIDC Core §3.1.3.6)."""
    digest = hashlib.sha512(value.encode()).digest() if alg == "EdDSA" else hashlib.sha256(value.encode()).digest()
    return b64url_encode(digest[: len(digest) // 2])


def _header(token: str) -> dict[str, Any]:
    import json

    try:
        segment = token.split(".")[0]
        header = json.loads(b64url_decode_padded(segment))
    except (ValueError, IndexError, UnicodeDecodeError, RecursionError) as exc:  # nested too deep to parse
        raise TokenInvalid("malformed JWT header") from exc
    if not isinstance(header, dict):
        raise TokenInvalid("malformed JWT header")
    return header


def verify(
    token: str,
    *,
    typ: str | None = None,
    audience: str | None = None,
    now: datetime | None = None,
    check_exp: bool = True,
) -> dict[str, Any]:
    """Verify signature, issuer, expiry (and ``typ``/``aud`` when given); return the claims."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 16384:
        raise TokenInvalid("not a compact JWS")
    header = _header(token)
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise TokenInvalid("missing kid")
    found = keys.public_key(kid)
    if found is None:
        raise TokenInvalid("unknown kid")
    key, alg = found
    if header.get("alg") != alg:
        raise TokenInvalid("algorithm does not match the key")
    if typ is not None and str(header.get("typ", "")).lower() not in {typ, f"application/{typ}"}:
        raise TokenInvalid("unexpected typ")
    try:
        decoded = jwt.decode(token, key, algorithms=[alg])
    except (JoseError, ValueError, TypeError) as exc:
        raise TokenInvalid("bad signature") from exc
    claims = dict(decoded.claims)
    moment = int((now or timezone.now()).timestamp())
    if claims.get("iss") != app_settings.ISSUER:
        raise TokenInvalid("wrong issuer")
    if check_exp and (not isinstance(claims.get("exp"), int) or claims["exp"] <= moment):
        raise TokenExpired("expired")
    if audience is not None:
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if audience not in auds:
            raise TokenInvalid("wrong audience")
    return claims
