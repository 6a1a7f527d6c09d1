"""Helpers for the PAR, request-object and FAPI tests: clients with keys, client assertions,
request objects and pushes, all signed with joserfc (a JOSE library independent of the
server's checks)."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.test import Client as HttpClient
from django.urls import reverse
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from clients.flows.registration import register_client
from clients.models import Client

from .conftest import SERVICE_REDIRECT, Pkce, form_post

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def issuer() -> str:
    return str(settings.IDP_ISSUER)


def keyed_client(client_id: str, *, profile: str = "standard", rsa: RSAKey | None = None, **extra: Any
                 ) -> tuple[Client, ECKey]:
    """A confidential client authenticating with private_key_jwt (EC key ``k1``, and an RSA key
    ``r1`` when given), first party so no consent page stands between request and code."""
    key = ECKey.generate_key("P-256", private=True)
    keys = [key.as_dict(private=False) | {"kid": "k1", "use": "sig"}]
    if rsa is not None:
        keys.append(rsa.as_dict(private=False) | {"kid": "r1", "use": "sig"})
    registered = register_client(
        name=f"Keyed {client_id}", public=False, redirect_uris=[SERVICE_REDIRECT], first_party=True,
        auth_methods=["private_key_jwt"], jwks={"keys": keys}, client_id=client_id, profile=profile, **extra,
    )
    return registered.client, key


def client_assertion(client_id: str, key: Any, *, aud: str | None = None, alg: str = "ES256", kid: str = "k1") -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud or issuer(), "iat": now, "exp": now + 60,
              "jti": str(uuid.uuid4())}
    return jwt.encode({"alg": alg, "kid": kid}, claims, key, algorithms=[alg])


def authenticated(client_id: str, key: Any, **kw: Any) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": client_assertion(client_id, key, **kw)}


def request_params(client_id: str, pkce: Pkce, **extra: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": client_id, "redirect_uri": SERVICE_REDIRECT,
        "scope": "openid profile", "state": "st-" + uuid.uuid4().hex[:8], "nonce": "n-" + uuid.uuid4().hex[:8],
        "code_challenge": pkce.challenge, "code_challenge_method": "S256",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def request_object(client_id: str, key: Any, params: dict[str, Any], *, alg: str = "ES256", kid: str = "k1",
                   **claims: Any) -> str:
    """A signed request object (RFC 9101 §4): the parameters plus iss, aud, exp, nbf."""
    now = int(time.time())
    body = {**params, "iss": client_id, "aud": issuer(), "iat": now, "nbf": now, "exp": now + 300}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": kid}, body, key, algorithms=[alg])


def unsigned(claims: dict[str, Any]) -> str:
    """An ``alg: none`` object, built by hand (JOSE libraries rightly refuse to)."""
    import base64
    import json

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}."


def push(data: dict[str, Any], **headers: Any) -> Any:
    return form_post(HttpClient(), reverse("par"), data, **headers)


def authorize_url(client_id: str, **params: str) -> str:
    return f"{reverse('authorize')}?{urlencode({'client_id': client_id, **params})}"
