"""End to end against a live server, driven by real third-party clients: Authlib's OAuth2
client (code + PKCE S256, refresh, revocation) and PyJWT's PyJWKClient (ID and access token
validation against our JWKS, before and after a key rotation)."""

from __future__ import annotations

import secrets
from typing import Any

import jwt
import pytest
from authlib.integrations.requests_client import OAuth2Session
from jwt import PyJWKClient

from clients.flows.registration import register_client
from core import keys

from .conftest import BrowserAgent

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
REDIRECT = "http://127.0.0.1:53682/callback"


@pytest.fixture
def app_client(db: Any) -> Any:
    return register_client(
        name="E2E mobile", public=True, redirect_uris=["http://127.0.0.1/callback"], first_party=True
    ).client


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    user = django_user_model(username="alice", email="alice@example.com")
    user.set_password(PASSWORD)
    user.save()
    return user


def login_and_get_tokens(issuer: str, client_id: str) -> tuple[OAuth2Session, dict[str, Any], str]:
    session = OAuth2Session(client_id, redirect_uri=REDIRECT, scope="openid profile email offline_access",
                            code_challenge_method="S256", token_endpoint_auth_method="none")
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(12)
    url, state = session.create_authorization_url(f"{issuer}/authorize", code_verifier=verifier, nonce=nonce)
    callback = BrowserAgent(issuer).follow_to_client(url, REDIRECT, "alice", PASSWORD)
    assert f"iss={issuer}".replace(":", "%3A").replace("/", "%2F") in callback or f"iss={issuer}" in callback
    token = session.fetch_token(f"{issuer}/token", authorization_response=callback, code_verifier=verifier)
    return session, token, nonce


def test_code_pkce_refresh_revoke_with_authlib_and_pyjwt(issuer, app_client, alice):
    """The app was registered without an algorithm: RS256, what relying parties expect by default."""
    session, token, nonce = login_and_get_tokens(issuer, app_client.client_id)
    jwks = PyJWKClient(f"{issuer}/jwks.json")
    id_claims = jwt.decode(
        token["id_token"], jwks.get_signing_key_from_jwt(token["id_token"]).key,
        algorithms=["RS256"], audience=app_client.client_id, issuer=issuer,
    )
    assert id_claims["nonce"] == nonce and id_claims["sub"] == alice.get_user_id()
    assert jwt.get_unverified_header(token["access_token"])["typ"] == "at+jwt"
    access = jwt.decode(
        token["access_token"], jwks.get_signing_key_from_jwt(token["access_token"]).key,
        algorithms=["RS256"], audience=app_client.client_id, issuer=issuer,
    )
    assert access["client_id"] == app_client.client_id
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token["access_token"], jwks.get_signing_key_from_jwt(token["access_token"]).key,
                   algorithms=["RS256"], audience="https://someone-else.example", issuer=issuer)

    userinfo = session.get(f"{issuer}/userinfo").json()
    assert userinfo["sub"] == alice.get_user_id() and userinfo["email"] == "alice@example.com"

    old_refresh = token["refresh_token"]
    refreshed = session.refresh_token(f"{issuer}/token", refresh_token=old_refresh)
    assert refreshed["refresh_token"] != old_refresh
    # Once its successor was used the chain moved on: the old token again is reuse.
    session.refresh_token(f"{issuer}/token", refresh_token=refreshed["refresh_token"])
    reuse = session.post(f"{issuer}/token", data={"grant_type": "refresh_token", "refresh_token": old_refresh, "client_id": app_client.client_id})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"


def test_revocation_with_authlib(issuer, app_client, alice):
    session, token, _ = login_and_get_tokens(issuer, app_client.client_id)
    response = session.revoke_token(f"{issuer}/revoke", token=token["refresh_token"], token_type_hint="refresh_token")
    assert response.status_code == 200
    denied = session.post(f"{issuer}/token", data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": app_client.client_id})
    assert denied.json()["error"] == "invalid_grant"
    assert session.get(f"{issuer}/userinfo").status_code == 401


def test_pyjwkclient_follows_key_rotation(issuer, app_client, alice, time_machine):
    """A new key is published before it signs, so a relying party's JWKS cache already holds
    it when the first token signed with it arrives; the old key stays published meanwhile."""
    import datetime as dt

    time_machine.move_to(dt.datetime.now(tz=dt.UTC), tick=True)
    _, before, _ = login_and_get_tokens(issuer, app_client.client_id)
    old_kid = jwt.get_unverified_header(before["id_token"])["kid"]
    relying_party = PyJWKClient(f"{issuer}/jwks.json", cache_keys=False)
    jwt.decode(before["id_token"], relying_party.get_signing_key(old_kid).key, algorithms=["RS256"], audience=app_client.client_id)

    new_key = keys.rotate("RS256")
    refreshed_rp = PyJWKClient(f"{issuer}/jwks.json")  # the RP's cache expired (max-age < publish-ahead)
    assert refreshed_rp.get_signing_key(new_key.kid).key_id == new_key.kid
    _, still_old, _ = login_and_get_tokens(issuer, app_client.client_id)
    assert jwt.get_unverified_header(still_old["id_token"])["kid"] == old_kid  # published, not signing yet

    time_machine.shift(dt.timedelta(seconds=3601))
    _, after, _ = login_and_get_tokens(issuer, app_client.client_id)
    assert jwt.get_unverified_header(after["id_token"])["kid"] == new_key.kid
    jwt.decode(after["id_token"], refreshed_rp.get_signing_key(new_key.kid).key, algorithms=["RS256"], audience=app_client.client_id)
    latest = PyJWKClient(f"{issuer}/jwks.json")
    old_key = latest.get_signing_key(old_kid).key  # still published while its tokens may live
    jwt.decode(still_old["id_token"], old_key, algorithms=["RS256"], audience=app_client.client_id, options={"verify_exp": False})


def test_negative_cases_against_live_server(issuer, app_client, alice):
    import requests

    agent = BrowserAgent(issuer)
    bad = agent.http.get(f"{issuer}/authorize", params={"response_type": "code", "client_id": app_client.client_id,
                          "redirect_uri": "https://evil.example/cb", "code_challenge": "x" * 43, "code_challenge_method": "S256"},
                          allow_redirects=False)
    assert bad.status_code == 400 and "Location" not in bad.headers
    none_hint = requests.get(f"{issuer}/authorize", params={"response_type": "code", "client_id": app_client.client_id,
                             "redirect_uri": REDIRECT, "scope": "openid", "prompt": "none", "state": "s",
                             "code_challenge": "x" * 43, "code_challenge_method": "S256"}, allow_redirects=False)
    assert "error=login_required" in none_hint.headers["Location"]
    _, token, _ = login_and_get_tokens(issuer, app_client.client_id)
    header, payload, _ = token["access_token"].split(".")
    import base64
    import json

    forged_header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "at+jwt"}).encode()).rstrip(b"=").decode()
    assert requests.get(f"{issuer}/userinfo", headers={"Authorization": f"Bearer {forged_header}.{payload}."}).status_code == 401
