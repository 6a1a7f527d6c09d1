"""Verification of DPoP proofs (RFC 9449 §4.3), in the order of the RFC's checklist.

``verify_proof`` returns a ``DPoPProof`` or raises ``DPoPError``; no other exception
escapes, whatever the input (library errors are converted at each boundary). It records
no security event: the caller does, with ``DPoPError.reason``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from core.encoding import b64url_decode, b64url_encode

from ..app_settings import app_settings
from .errors import DPoPError, Reason
from .htu import htu_matches
from .jwk import public_key_for, thumbprint
from .nonce import is_valid_nonce, issue_nonce
from .replay import remember_jti, replay_key

DPOP_TYP = "dpop+jwt"
#: Upper bound on a proof's length: an EC proof is ~500 characters, an RSA-4096 one ~2,000.
MAX_PROOF_LENGTH = 8192


@dataclass(frozen=True)
class DPoPProof:
    """A verified proof. ``jkt`` is the key's RFC 7638 thumbprint (``cnf.jkt``, §6.1)."""

    jkt: str
    jwk: dict[str, Any]
    jti: str
    iat: datetime
    htm: str
    htu: str
    nonce: str | None = None
    ath: str | None = None
    alg: str = ""


@dataclass(frozen=True)
class _Compact:
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes = field(repr=False)


def access_token_hash(access_token: str) -> str:
    """The ``ath`` claim: base64url(SHA-256(ASCII of the access token)) (RFC 9449 §4.2)."""
    return b64url_encode(hashlib.sha256(access_token.encode("utf-8")).digest())


def dpop_header_values(request: HttpRequest) -> list[str]:
    """The ``DPoP`` header field values of a Django request, for ``single_proof_from_headers``.

    WSGI servers join repeated header fields with commas, so one value may hold several.
    """
    value = request.META.get("HTTP_DPOP")
    return [] if value is None else [value]


def single_proof_from_headers(values: Sequence[str] | None) -> str | None:
    """The one DPoP proof of a request, or None without a ``DPoP`` header (RFC 9449 §4.3 check 1).

    More than one header field, or one value holding a comma (repeated fields joined by the
    server; a compact JWS never contains a comma), is ``dpop_multiple_headers``.
    """
    values = list(values or [])
    if not values:
        return None
    if len(values) > 1 or "," in values[0]:
        raise DPoPError.invalid(Reason.MULTIPLE_HEADERS, "Exactly one DPoP header is allowed.")
    return values[0].strip()


def verify_proof(
    proof_jwt: str,
    *,
    method: str,
    url: str,
    access_token: str | None = None,
    nonce_required: bool = False,
    now: datetime | None = None,
    expected_jkt: str | None = None,
    remember: bool = True,
) -> DPoPProof:
    """Check a DPoP proof for an HTTP request (RFC 9449 §4.3) and remember its ``jti``
    (``remember=False``: the caller marks it, ``replay_mark``, before anything else it does).

    ``method`` and ``url`` are the request's (``request.method``,
    ``request.build_absolute_uri()``). With ``access_token``, the proof must carry its
    ``ath`` (§7.1); with ``expected_jkt`` (the ``cnf.jkt`` of the presented token, or the
    key a refresh token is bound to), the proof key must be that key (§4.3 check 12).
    """
    now = now or timezone.now()
    compact = _parse_compact(proof_jwt)
    alg = _check_header(compact.header)
    key = public_key_for(compact.header.get("jwk"), alg)
    _check_signature(compact, alg, key)
    claims = _check_claims(compact.payload)
    _check_request(claims, method=method, url=url)
    _check_nonce(claims.get("nonce"), required=nonce_required, now=now)
    iat = _check_iat(claims["iat"], now=now)
    jkt = thumbprint(compact.header["jwk"])
    _check_binding(claims.get("ath"), access_token=access_token, jkt=jkt, expected_jkt=expected_jkt)
    if remember:
        _check_replay(jkt, claims["jti"], iat=iat, now=now)
    return DPoPProof(
        jkt=jkt,
        jwk=dict(compact.header["jwk"]),
        jti=claims["jti"],
        iat=datetime.fromtimestamp(iat, tz=UTC),
        htm=claims["htm"],
        htu=claims["htu"],
        nonce=claims.get("nonce"),
        ath=claims.get("ath"),
        alg=alg,
    )


# ----------------------------------------------------------------------------- §4.3 check 2
def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_object(segment: str) -> dict[str, Any]:
    value = json.loads(
        b64url_decode(segment).decode("utf-8"),
        object_pairs_hook=_reject_duplicates,
        parse_constant=_reject_constant,
    )
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _parse_compact(proof_jwt: object) -> _Compact:
    """A well-formed JWS Compact Serialization with JSON-object header and payload."""
    if not isinstance(proof_jwt, str) or not 0 < len(proof_jwt) <= MAX_PROOF_LENGTH:
        raise DPoPError.invalid(Reason.MALFORMED, "The DPoP proof is not a JWT.")
    parts = proof_jwt.split(".")
    if len(parts) != 3:
        raise DPoPError.invalid(Reason.MALFORMED, "The DPoP proof is not a JWS compact serialization.")
    try:
        header, payload = _json_object(parts[0]), _json_object(parts[1])
        signature = b64url_decode(parts[2])
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    except (ValueError, RecursionError) as exc:
        raise DPoPError.invalid(Reason.MALFORMED, "The DPoP proof is not a well-formed JWT.") from exc
    return _Compact(header, payload, signing_input, signature)


# ----------------------------------------------------------------------------- checks 4-5
def _check_header(header: dict[str, Any]) -> str:
    """``typ`` is ``dpop+jwt``; ``alg`` is asymmetric and allow-listed; no ``crit``."""
    if header.get("typ") != DPOP_TYP:
        raise DPoPError.invalid(Reason.BAD_TYP, "The DPoP proof typ must be dpop+jwt.")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in app_settings.DPOP_ALGS:
        raise DPoPError.invalid(Reason.BAD_ALG, "The DPoP proof alg is not supported.")
    if "crit" in header:
        raise DPoPError.invalid(Reason.MALFORMED, "The DPoP proof has an unsupported crit header.")
    return alg


# ----------------------------------------------------------------------------- check 6
def _check_signature(compact: _Compact, alg: str, key: ECKey | RSAKey | OKPKey) -> None:
    """The JWS signature verifies with the ``jwk`` header key, under exactly ``alg``."""
    model = JWSRegistry.algorithms[alg]
    try:
        model.check_key(key)
        valid = model.verify(compact.signing_input, compact.signature, key)
    except (JoseError, ValueError, TypeError) as exc:
        raise DPoPError.invalid(Reason.BAD_SIGNATURE, "The DPoP proof signature is invalid.") from exc
    if not valid:
        raise DPoPError.invalid(Reason.BAD_SIGNATURE, "The DPoP proof signature is invalid.")


# ----------------------------------------------------------------------------- check 3
_REQUIRED_STRINGS = ("jti", "htm", "htu")
_OPTIONAL_STRINGS = ("nonce", "ath")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _check_claims(payload: dict[str, Any]) -> dict[str, Any]:
    """``jti``, ``htm``, ``htu`` and ``iat`` are present (§4.2) and every claim has its type."""
    for name in (*_REQUIRED_STRINGS, "iat"):
        if name not in payload:
            raise DPoPError.invalid(Reason.MISSING_CLAIM, f"The DPoP proof has no {name} claim.")
    for name in _REQUIRED_STRINGS:
        if not isinstance(payload[name], str) or not payload[name]:
            raise DPoPError.invalid(Reason.MALFORMED_CLAIM, f"The DPoP proof {name} claim is invalid.")
    for name in _OPTIONAL_STRINGS:
        if name in payload and not isinstance(payload[name], str):
            raise DPoPError.invalid(Reason.MALFORMED_CLAIM, f"The DPoP proof {name} claim is invalid.")
    if not _is_number(payload["iat"]):
        raise DPoPError.invalid(Reason.MALFORMED_CLAIM, "The DPoP proof iat claim is invalid.")
    return payload


# ----------------------------------------------------------------------------- checks 8-9
def _check_request(claims: dict[str, Any], *, method: str, url: str) -> None:
    """``htm`` is the request method; ``htu`` the request URI without query and fragment."""
    if claims["htm"] != method:
        raise DPoPError.invalid(Reason.HTM_MISMATCH, "The DPoP proof htm does not match the request method.")
    if not htu_matches(claims["htu"], url):
        raise DPoPError.invalid(Reason.HTU_MISMATCH, "The DPoP proof htu does not match the request URI.")


# ----------------------------------------------------------------------------- check 10
def _check_nonce(nonce: str | None, *, required: bool, now: datetime) -> None:
    """A server nonce (§8, §9): required ones must be present; any present one must be ours
    and current. Either failure is ``use_dpop_nonce`` with a fresh nonce to send back."""
    if nonce is None and required:
        raise DPoPError.use_nonce(
            Reason.NONCE_MISSING, "A server-provided nonce is required in the DPoP proof.", issue_nonce(now)
        )
    if nonce is not None and not is_valid_nonce(nonce, now):
        raise DPoPError.use_nonce(
            Reason.NONCE_INVALID, "The DPoP proof nonce is invalid or expired.", issue_nonce(now)
        )


# ----------------------------------------------------------------------------- check 11
def _timestamp(now: datetime) -> float:
    return (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()


def _check_iat(iat: float, *, now: datetime) -> float:
    """``iat`` lies in ``[now - MAX_AGE - CLOCK_SKEW, now + CLOCK_SKEW]`` (§4.3, §11.1)."""
    current, skew = _timestamp(now), app_settings.DPOP_CLOCK_SKEW
    if iat > current + skew:
        raise DPoPError.invalid(Reason.IAT_FUTURE, "The DPoP proof iat is in the future.")
    if iat < current - app_settings.DPOP_MAX_AGE - skew:
        raise DPoPError.invalid(Reason.IAT_STALE, "The DPoP proof is too old.")
    return float(iat)


# ----------------------------------------------------------------------------- check 12
def _check_binding(ath: str | None, *, access_token: str | None, jkt: str, expected_jkt: str | None) -> None:
    """``ath`` hashes the presented access token (§7.1); the key is the bound one (§6.1)."""
    if access_token is not None:
        if ath is None:
            raise DPoPError.invalid(Reason.ATH_MISSING, "The DPoP proof has no ath claim.")
        if not hmac.compare_digest(ath.encode("utf-8", "surrogatepass"), access_token_hash(access_token).encode()):
            raise DPoPError.invalid(Reason.ATH_MISMATCH, "The DPoP proof ath does not match the access token.")
    if expected_jkt is not None and not hmac.compare_digest(jkt.encode(), expected_jkt.encode()):
        raise DPoPError.invalid(Reason.KEY_MISMATCH, "The DPoP proof key is not the key the token is bound to.")


# ----------------------------------------------------------------------------- §11.1
def _check_replay(jkt: str, jti: str, *, iat: float, now: datetime) -> None:
    """Refuse a ``jti`` this key already used while the proof could still be accepted."""
    if not remember_jti(jkt, jti, timeout=_replay_lifetime(iat, now)):
        raise replayed()


def _replay_lifetime(iat: float, now: datetime) -> float:
    """How long a ``jti`` stays remembered: while its proof could still pass the ``iat`` check."""
    return iat + app_settings.DPOP_MAX_AGE + app_settings.DPOP_CLOCK_SKEW - _timestamp(now) + 1


def replay_mark(proof: DPoPProof, now: datetime) -> tuple[str, int]:
    """The replay cache's key for a proof verified with ``remember=False``, and its timeout in
    seconds: what ``remember_jti`` would have added."""
    return replay_key(proof.jkt, proof.jti), max(1, math.ceil(_replay_lifetime(proof.iat.timestamp(), now)))


def replayed() -> DPoPError:
    return DPoPError.invalid(Reason.REPLAY, "The DPoP proof has been used before.")
