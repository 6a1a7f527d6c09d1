"""Creating DPoP proofs (RFC 9449 §4.2): for the device simulator, the demo and tests.

The server never calls this. Signing goes through joserfc's algorithm models directly so
that ``EdDSA`` (deprecated as a name by RFC 9864, still the one RFC 9449 clients use)
signs without a warning.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.utils import timezone
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from core.encoding import b64url_encode

from .proof import DPOP_TYP, access_token_hash

_DEFAULT_ALGS = {"EC": "ES256", "RSA": "PS256", "OKP": "EdDSA"}


def public_jwk(key: ECKey | RSAKey | OKPKey) -> dict[str, Any]:
    """The public members of ``key`` as a JWK dict."""
    return {k: v for k, v in key.as_dict(private=False).items() if k != "kid"}


def sign_compact(header: dict[str, Any], payload: dict[str, Any], key: ECKey | RSAKey | OKPKey) -> str:
    """A JWS compact serialization of ``payload`` signed with ``header["alg"]``, unchecked."""
    signing_input = f"{b64url_encode(_json(header))}.{b64url_encode(_json(payload))}".encode("ascii")
    signature = JWSRegistry.algorithms[header["alg"]].sign(signing_input, key)
    return f"{signing_input.decode('ascii')}.{b64url_encode(signature)}"


def create_proof(
    key: ECKey | RSAKey | OKPKey,
    *,
    method: str,
    url: str,
    access_token: str | None = None,
    nonce: str | None = None,
    now: datetime | None = None,
    jti: str | None = None,
    alg: str | None = None,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
) -> str:
    """A DPoP proof for ``method url`` signed by ``key`` (RFC 9449 §4.2).

    ``htu`` is ``url`` without query and fragment; ``ath`` is set when ``access_token`` is.
    ``header`` and ``claims`` override or add members (tests use them to forge proofs).
    """
    protected = {"typ": DPOP_TYP, "alg": alg or _DEFAULT_ALGS[key.key_type], "jwk": public_jwk(key)}
    parts = urlsplit(url)
    payload: dict[str, Any] = {
        "jti": jti or secrets.token_urlsafe(16),
        "htm": method,
        "htu": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
        "iat": int((now or timezone.now()).timestamp()),
    }
    if access_token is not None:
        payload["ath"] = access_token_hash(access_token)
    if nonce is not None:
        payload["nonce"] = nonce
    return sign_compact({**protected, **(header or {})}, {**payload, **(claims or {})}, key)


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")
