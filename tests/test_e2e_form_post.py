"""response_mode=form_post end to end with a real relying-party library: Authlib's Django
client (``authorize_redirect`` / ``authorize_access_token``, which reads a POSTed callback),
against a live server. The user agent logs in through the real form, then submits the
form_post page as a browser would; the RP validates state, PKCE and the ID token (nonce,
iss, aud, signature from our JWKS)."""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from authlib.integrations.django_client import OAuth
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.test import RequestFactory

from clients.flows.registration import register_client

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
RP_CALLBACK = "http://127.0.0.1:8765/rp/callback"


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    user = django_user_model(username="alice", email="alice@example.com", first_name="Alice")
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def rp(issuer: str, db: Any) -> Any:
    registered = register_client(name="Django RP", public=False, redirect_uris=["http://127.0.0.1/rp/callback"],
                                 first_party=True, scopes=["openid", "profile", "email"])
    oauth = OAuth()
    oauth.register(
        "vigil", client_id=registered.client.client_id, client_secret=registered.secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256",
                       "token_endpoint_auth_method": "client_secret_basic"},
    )
    return oauth.vigil


def _user_agent_to_form_post(url: str) -> tuple[str, dict[str, str]]:
    """Log in and stop at the form_post page; return its action and fields."""
    http = requests.Session()
    response = http.get(url, allow_redirects=True, timeout=10)
    if 'name="password"' in response.text:
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text)
        assert found is not None
        token = found.group(1)
        found = re.search(r'name="next" value="([^"]*)"', response.text)
        assert found is not None
        nxt = unescape(found.group(1))
        response = http.post(response.url, data={"csrfmiddlewaretoken": token, "username": "alice", "password": PASSWORD,
                                                 "next": nxt}, headers={"Referer": response.url}, timeout=10)
    assert 'id="vigil-form-post"' in response.text, response.text[:800]
    found = re.search(r'<form id="vigil-form-post" method="post" action="([^"]*)"', response.text)
    assert found is not None
    action = unescape(found.group(1))
    fields = {unescape(n): unescape(v) for n, v in
              re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', response.text)}
    return urljoin(response.url, action), fields


def test_authlib_django_client_completes_form_post(issuer: str, rp: Any, alice: Any) -> None:
    factory = RequestFactory()
    login = factory.get("/rp/login")
    login.session = SessionStore()
    redirect = rp.authorize_redirect(login, RP_CALLBACK, response_mode="form_post", nonce="n-" + "x" * 16)
    action, fields = _user_agent_to_form_post(redirect["Location"])
    assert action == RP_CALLBACK and fields["iss"] == issuer
    callback = factory.post("/rp/callback", data=fields)
    callback.session = login.session
    token = rp.authorize_access_token(callback)
    assert token["userinfo"]["sub"] == alice.get_user_id() and token["userinfo"]["iss"] == issuer
    assert token["userinfo"]["nonce"] == "n-" + "x" * 16
    assert rp.userinfo(token=token)["email"] == "alice@example.com"


def test_authlib_refuses_a_replayed_form_post(issuer: str, rp: Any, alice: Any, settings: Any) -> None:
    """The same posted code cannot be redeemed twice (RFC 6749 §4.1.2), with the retry window
    off (inside it, the replay by the same client with its verifier is answered again:
    docs/device-sessions.md, "The code exchange has the same window")."""
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 0
    factory = RequestFactory()
    login = factory.get("/rp/login")
    login.session = SessionStore()
    redirect = rp.authorize_redirect(login, RP_CALLBACK, response_mode="form_post")
    _, fields = _user_agent_to_form_post(redirect["Location"])
    verifier_state = dict(login.session)
    callback = factory.post("/rp/callback", data=fields)
    callback.session = login.session
    rp.authorize_access_token(callback)
    replay = factory.post("/rp/callback", data=fields)
    replay.session = SessionStore()
    replay.session.update(verifier_state)
    from authlib.integrations.base_client.errors import OAuthError

    with pytest.raises(OAuthError) as refused:
        rp.authorize_access_token(replay)
    assert refused.value.error == "invalid_grant"
