"""Security Event Tokens (RFC 8417) as profiled by the Shared Signals Framework 1.0 §"Events":
explicit typing (``typ: secevent+jwt``), no ``sub`` and no ``exp`` claim, the subject in
``sub_id`` (RFC 9493 Subject Identifiers; SSF complex subjects), one event per SET.

``build`` makes the claims of a SET we transmit; ``sign`` signs them with our active key;
``verify`` checks a SET pushed to us against a transmitter's JWKS with an explicit
algorithm list and raises ``SetError`` carrying the RFC 8935 §2.4 error code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from core import jwt_tokens
from core.app_settings import app_settings as idp_settings
from core.crypto import generate_token
from core.encoding import b64url_decode_padded
from core.text import storable_text

from .app_settings import app_settings

SET_TYP = "secevent+jwt"
MAX_SET_CHARS = 32768
MAX_EVENTS = 4  # SSF 1.0: one event, or alternative URIs of the same event

_KTY_FOR_ALG = {"ES": "EC", "RS": "RSA", "PS": "RSA", "Ed": "OKP"}


class SetErrorCode(StrEnum):
    """RFC 8935 §2.4 error codes (the ``err`` of a refused SET)."""

    INVALID_REQUEST = "invalid_request"
    INVALID_KEY = "invalid_key"
    INVALID_ISSUER = "invalid_issuer"
    INVALID_AUDIENCE = "invalid_audience"
    AUTHENTICATION_FAILED = "authentication_failed"
    ACCESS_DENIED = "access_denied"


class SetError(Exception):
    """A refused SET; ``code`` is an RFC 8935 §2.4 error code."""

    def __init__(self, code: SetErrorCode, description: str, status: int = 400):
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status


# --- transmitting --------------------------------------------------------------------------


def build(
    *, audience: str, event_type: str, sub_id: dict[str, Any], event: dict[str, Any], now: datetime,
    txn: str | None = None,
) -> dict[str, Any]:
    """The claims of one SET (RFC 8417 §2.2; SSF 1.0 §"Security Event Token Profile")."""
    claims: dict[str, Any] = {
        "iss": idp_settings.ISSUER,
        "jti": generate_token(24),
        "iat": int(now.timestamp()),
        "aud": audience,
        "sub_id": sub_id,
        "events": {event_type: event},
    }
    if txn:
        claims["txn"] = txn
    return claims


def sign(claims: dict[str, Any], now: datetime | None = None) -> str:
    """Sign with our active key for ``IDP_SSF_SIGNING_ALG`` (published in our JWKS)."""
    return jwt_tokens.sign(claims, alg=app_settings.SIGNING_ALG, typ=SET_TYP, now=now)


# --- receiving -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyPolicy:
    issuer: str
    audience: str
    algorithms: list[str]
    now: datetime


def _b64json(segment: str) -> Any:
    return json.loads(b64url_decode_padded(segment))


def header_of(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, or ``SetError(invalid_request)``."""
    if not isinstance(token, str) or len(token) > MAX_SET_CHARS or token.count(".") != 2:
        raise SetError(SetErrorCode.INVALID_REQUEST, "the body is not a compact JWS")
    try:
        header = _b64json(token.split(".", 1)[0])
    except (ValueError, UnicodeError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        raise SetError(SetErrorCode.INVALID_REQUEST, "malformed JWS header") from exc
    if not isinstance(header, dict):
        raise SetError(SetErrorCode.INVALID_REQUEST, "malformed JWS header")
    return header


def check_header(header: dict[str, Any], algorithms: list[str]) -> str:
    """RFC 8417 §2.3 explicit typing and an allowed ``alg``; returns the ``alg``."""
    typ = str(header.get("typ", "")).lower()
    if typ not in {SET_TYP, f"application/{SET_TYP}"}:
        raise SetError(SetErrorCode.INVALID_REQUEST, "typ must be secevent+jwt")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise SetError(SetErrorCode.INVALID_KEY, "signature algorithm not accepted")
    if "crit" in header:
        raise SetError(SetErrorCode.INVALID_REQUEST, "critical header parameters are not supported")
    return alg


def import_public_key(jwk: dict[str, Any], alg: str) -> ECKey | RSAKey | OKPKey:
    """A public key usable with ``alg``; private members or a mismatched ``kty`` are refused."""
    if not isinstance(jwk, dict) or "d" in jwk or jwk.get("kty") != _KTY_FOR_ALG.get(alg[:2]):
        raise SetError(SetErrorCode.INVALID_KEY, "no usable key for this algorithm")
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", alg) != alg:
        raise SetError(SetErrorCode.INVALID_KEY, "the key is not for this algorithm")
    importer = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}[jwk["kty"]]
    try:
        return importer.import_key(jwk)  # type: ignore[attr-defined]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise SetError(SetErrorCode.INVALID_KEY, "the transmitter's key cannot be imported") from exc


def check_signature(token: str, key: ECKey | RSAKey | OKPKey, alg: str) -> dict[str, Any]:
    try:
        decoded = jwt.decode(token, key, algorithms=[alg])
    except (JoseError, ValueError, TypeError, UnicodeError, RecursionError) as exc:
        raise SetError(SetErrorCode.AUTHENTICATION_FAILED, "the SET signature does not verify") from exc
    return dict(decoded.claims)


def check_claims(claims: dict[str, Any], policy: VerifyPolicy) -> None:
    """RFC 8417 §2.2 and SSF 1.0: issuer, audience, jti, iat window, sub_id, events."""
    if claims.get("iss") != policy.issuer:
        raise SetError(SetErrorCode.INVALID_ISSUER, "iss is not this transmitter's issuer")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if policy.audience not in audiences:
        raise SetError(SetErrorCode.INVALID_AUDIENCE, "aud does not name this receiver")
    jti = claims.get("jti")
    if not storable_text(jti, 255):
        raise SetError(SetErrorCode.INVALID_REQUEST, "jti missing or malformed")
    _check_iat(claims.get("iat"), policy.now)
    if "sub" in claims or "exp" in claims:
        raise SetError(SetErrorCode.INVALID_REQUEST, "SSF SETs carry neither sub nor exp")
    if not isinstance(claims.get("sub_id"), dict) or not isinstance(claims["sub_id"].get("format"), str):
        raise SetError(SetErrorCode.INVALID_REQUEST, "sub_id missing or malformed")
    events = claims.get("events")
    if not isinstance(events, dict) or not events or not all(isinstance(v, dict) for v in events.values()):
        raise SetError(SetErrorCode.INVALID_REQUEST, "events missing or malformed")
    if len(events) > MAX_EVENTS:
        raise SetError(SetErrorCode.INVALID_REQUEST, "too many events in one SET")
    if "txn" in claims and not isinstance(claims["txn"], str):
        raise SetError(SetErrorCode.INVALID_REQUEST, "txn must be a string")


def _check_iat(iat: Any, now: datetime) -> None:
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise SetError(SetErrorCode.INVALID_REQUEST, "iat missing or not a number")
    moment = int(now.timestamp())
    if iat > moment + app_settings.CLOCK_SKEW_SECONDS:
        raise SetError(SetErrorCode.INVALID_REQUEST, "iat is in the future")
    if iat < moment - app_settings.MAX_SET_AGE_SECONDS:
        raise SetError(SetErrorCode.INVALID_REQUEST, "the SET is too old")


def verify(token: str, keys: dict[str, Any], policy: VerifyPolicy) -> dict[str, Any]:
    """Verify a pushed SET with ``keys`` (a JWKS dict) and return its claims."""
    header = header_of(token)
    alg = check_header(header, policy.algorithms)
    key = import_public_key(select_jwk(keys, header.get("kid")), alg)
    claims = check_signature(token, key, alg)
    check_claims(claims, policy)
    return claims


def select_jwk(jwks: dict[str, Any], kid: Any) -> dict[str, Any]:
    """The JWK named by ``kid``; without ``kid`` only a single-key JWKS is unambiguous."""
    candidates = [k for k in (jwks or {}).get("keys", []) if isinstance(k, dict)]
    if kid is None and len(candidates) == 1:
        return candidates[0]
    for jwk in candidates:
        if isinstance(kid, str) and jwk.get("kid") == kid:
            return jwk
    raise SetError(SetErrorCode.INVALID_KEY, "unknown kid")
