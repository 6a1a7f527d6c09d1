"""Pushed authorization requests (RFC 9126), request objects (RFC 9101) and the FAPI 2.0
profile against a live server, driven by third-party clients: Authlib's ``OAuth2Session``
builds the authorization request (PKCE S256, state, nonce), authenticates at ``/par`` and
``/token`` (``none``, and ``private_key_jwt`` with its ``PrivateKeyJWT``) and redeems the
code; joserfc signs the request objects and DPoP proofs (Authlib's client has neither)."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import ECKey

from clients.flows.registration import register_client
from sessions.models import AuthorizationCode

from .conftest import BrowserAgent

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
REDIRECT = "http://127.0.0.1:53682/callback"
BANK_REDIRECT = "https://bank.example/callback"


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    user = django_user_model(username="alice", email="alice@example.com")
    user.set_password(PASSWORD)
    user.save()
    return user


def _authorize_url(issuer: str, client_id: str, request_uri: str) -> str:
    return f"{issuer}/authorize?{urlencode({'client_id': client_id, 'request_uri': request_uri})}"


def test_public_app_pushes_with_authlib_and_the_request_uri_is_single_use(issuer, alice):
    client_id = register_client(name="PAR app", public=True, redirect_uris=["http://127.0.0.1/callback"],
                                first_party=True, require_par=True).client.client_id
    session = OAuth2Session(client_id, redirect_uri=REDIRECT, scope="openid profile offline_access",
                            code_challenge_method="S256", token_endpoint_auth_method="none")
    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(f"{issuer}/authorize", code_verifier=verifier,
                                                  nonce=secrets.token_urlsafe(12))
    plain = requests.get(url, allow_redirects=False, timeout=10)  # this client must push (RFC 9126 section 6)
    assert plain.status_code == 302 and "error=invalid_request" in plain.headers["Location"]

    pushed = session.post(f"{issuer}/par", data=dict(parse_qsl(urlsplit(url).query)), withhold_token=True)
    assert pushed.status_code == 201, pushed.text
    request_uri = pushed.json()["request_uri"]
    callback = BrowserAgent(issuer).follow_to_client(_authorize_url(issuer, client_id, request_uri), REDIRECT,
                                                     "alice", PASSWORD)
    assert dict(parse_qsl(urlsplit(callback).query))["state"] == state
    token = session.fetch_token(f"{issuer}/token", authorization_response=callback, code_verifier=verifier)
    assert token["access_token"] and token["refresh_token"]

    replay = BrowserAgent(issuer)  # another browser: the request_uri is refused before any sign-in
    again = replay.http.get(_authorize_url(issuer, client_id, request_uri), allow_redirects=False, timeout=10)
    assert again.status_code == 302 and "error=invalid_request_uri" in again.headers["Location"]
    assert AuthorizationCode.objects.count() == 1


def _bank(issuer: str) -> tuple[str, ECKey]:
    key = ECKey.generate_key("P-256", private=True)
    client = register_client(
        name="Bank", public=False, redirect_uris=[BANK_REDIRECT], first_party=True, auth_methods=["private_key_jwt"],
        jwks={"keys": [key.as_dict(private=False) | {"kid": "bank-1"}]}, profile="fapi2",
    ).client
    return client.client_id, key


def _bank_session(client_id: str, key: ECKey, issuer: str) -> OAuth2Session:
    session = OAuth2Session(client_id, key, redirect_uri=BANK_REDIRECT, scope="openid profile",
                            code_challenge_method="S256", token_endpoint_auth_method="private_key_jwt")
    # FAPI 2.0: the assertion's aud is the issuer alone.
    session.register_client_auth_method(PrivateKeyJWT(issuer, alg="ES256", headers={"kid": "bank-1"}))
    return session


def _request_object(client_id: str, key: ECKey, issuer: str, params: dict[str, str], **claims: Any) -> str:
    now = int(time.time())
    body = {**params, "iss": client_id, "aud": issuer, "nbf": now, "iat": now, "exp": now + 300} | claims
    return jwt.encode({"alg": "ES256", "kid": "bank-1"}, body, key, algorithms=["ES256"])


def _dpop_proof(key: ECKey, url: str) -> str:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    claims = {"jti": str(uuid.uuid4()), "htm": "POST", "htu": url, "iat": int(time.time())}
    return jwt.encode(header, claims, key, algorithms=["ES256"])


def test_fapi2_bank_signed_pushed_request_private_key_jwt_and_dpop(issuer, alice, settings):
    settings.IDP_CLIENT_ASSERTION_MAX_AGE = 3600  # Authlib's PrivateKeyJWT assertions live one hour
    client_id, key = _bank(issuer)
    session = _bank_session(client_id, key, issuer)
    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(f"{issuer}/authorize", code_verifier=verifier,
                                                  nonce=secrets.token_urlsafe(12))
    params = dict(parse_qsl(urlsplit(url).query))
    auth = session.client_auth("private_key_jwt")

    unsigned = session.post(f"{issuer}/par", withhold_token=True, auth=auth, data={
        "client_id": client_id, "request": _unsigned({**params, "iss": client_id, "aud": issuer})})
    assert unsigned.status_code == 400 and unsigned.json()["error"] == "invalid_request_object"
    pushed = session.post(f"{issuer}/par", withhold_token=True, auth=auth,
                          data={"client_id": client_id, "request": _request_object(client_id, key, issuer, params)})
    assert pushed.status_code == 201, pushed.text
    request_uri = pushed.json()["request_uri"]
    stranger = register_client(name="Other", public=True, redirect_uris=["http://127.0.0.1/callback"]).client
    wrong = requests.get(_authorize_url(issuer, stranger.client_id, request_uri), allow_redirects=False, timeout=10)
    assert wrong.status_code == 302 and "error=invalid_request_uri" in wrong.headers["Location"]

    callback = BrowserAgent(issuer).follow_to_client(_authorize_url(issuer, client_id, request_uri), BANK_REDIRECT,
                                                     "alice", PASSWORD)
    query = dict(parse_qsl(urlsplit(callback).query))
    assert query["iss"] == issuer and query["state"] == state
    dpop_key = ECKey.generate_key("P-256", private=True)
    token = session.fetch_token(f"{issuer}/token", authorization_response=callback, code_verifier=verifier,
                                headers={"DPoP": _dpop_proof(dpop_key, f"{issuer}/token")})
    assert token["token_type"] == "DPoP"


def _unsigned(claims: dict[str, Any]) -> str:
    import base64
    import json

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}."


def test_par_never_answers_500_to_odd_input(issuer, alice):
    client_id = register_client(name="Fuzzed", public=True, redirect_uris=["http://127.0.0.1/callback"]).client.client_id
    odd = [f"client_id={client_id}&request=%ED%B3%BF", f"client_id={client_id}&request=%FF%FE",
           f"client_id={client_id}&request={'x' * 70000}", f"client_id={client_id}&request=a.b.c.d.e",
           "client_id=%00", f"client_id={client_id}&request_uri=", f"client_id={client_id}&max_age=%C2%B2",
           f"client_id={client_id}&request=e30.e30.&request=e30.e30.", ""]
    for body in odd:
        response = requests.post(f"{issuer}/par", data=body, timeout=10,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code in (400, 401), (body[:80], response.status_code, response.text[:200])
        assert response.json()["error"]
