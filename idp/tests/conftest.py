"""Fixtures for the provider's tests: users, clients, PKCE, a logged-in browser and a
helper that runs the authorization request to a code."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client as BrowserClient
from django.urls import reverse

from clients.flows.registration import RegisteredClient, register_client

PASSWORD = "correct horse battery staple"
MOBILE_REDIRECT = "com.example.app:/oauth2redirect"
MOBILE_CLIENT_ID = "test-mobile-app"
SERVICE_REDIRECT = "https://service.example.com/callback"


@dataclass
class Pkce:
    verifier: str
    challenge: str


def make_pkce() -> Pkce:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return Pkce(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


@pytest.fixture
def pkce() -> Pkce:
    return make_pkce()


@pytest.fixture
def user(django_user_model: Any) -> Any:
    account = django_user_model(username="alice", email="alice@example.com", first_name="Alice", last_name="Liddell")
    account.set_password(PASSWORD)
    account.email_verified = True
    account.save()
    return account


@pytest.fixture
def mobile_client(db: Any) -> RegisteredClient:
    return register_client(
        name="Mobile",
        public=True,
        redirect_uris=[MOBILE_REDIRECT, "http://127.0.0.1/callback"],
        post_logout_redirect_uris=["com.example.app:/logout"],
        first_party=True,
        allowed_audiences=["https://api.example.com"],
        client_id=MOBILE_CLIENT_ID,
    )


@pytest.fixture
def service_client(db: Any) -> RegisteredClient:
    return register_client(
        name="Service",
        public=False,
        redirect_uris=[SERVICE_REDIRECT],
        scopes=["openid", "profile", "email", "offline_access", "orders.read"],
        # The mobile app's backend: it may introspect the app's access tokens (aud = its
        # client_id without a resource indicator) and those for the API (RFC 7662 section 4).
        served_resources=[MOBILE_CLIENT_ID, "https://api.example.com"],
    )


@pytest.fixture
def browser(client: BrowserClient, user: Any) -> BrowserClient:
    """A Django test client logged in through the real login form (password only)."""
    response = client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302, response.content
    return client


def authorize_params(client_id: str, pkce: Pkce, **extra: str | None) -> dict[str, str]:
    """Authorization request parameters; an ``extra`` of None drops the parameter."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": MOBILE_REDIRECT,
        "scope": "openid profile email offline_access",
        "state": "st-" + secrets.token_hex(4),
        "nonce": "n-" + secrets.token_hex(4),
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(browser: BrowserClient, client_id: str, pkce: Pkce, **extra: str) -> tuple[str, dict[str, str]]:
    params = authorize_params(client_id, pkce, **extra)
    response = browser.get(f"{reverse('authorize')}?{urlencode(params)}")
    assert response.status_code == 302, response.content
    query = query_of(response["Location"])
    assert "code" in query, query
    return query["code"], params


def exchange(http: BrowserClient, code: str, pkce: Pkce, client_id: str, redirect_uri: str = MOBILE_REDIRECT, **extra: Any) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": pkce.verifier,
    }
    headers = {k: v for k, v in extra.items() if k.startswith("HTTP_")}
    data.update({k: v for k, v in extra.items() if not k.startswith("HTTP_")})
    return form_post(http, reverse("token"), data, **headers)


def form_post(http: BrowserClient, url: str, data: dict[str, Any], **headers: Any) -> Any:
    """POST application/x-www-form-urlencoded, as OAuth clients do."""
    body = urlencode({k: v for k, v in data.items() if v is not None}, doseq=True)
    return http.post(url, data=body, content_type="application/x-www-form-urlencoded", **headers)


@pytest.fixture
def tokens(browser: BrowserClient, mobile_client: RegisteredClient, pkce: Pkce) -> dict[str, Any]:
    code, params = get_code(browser, mobile_client.client.client_id, pkce)
    response = exchange(BrowserClient(), code, pkce, mobile_client.client.client_id)
    assert response.status_code == 200, response.content
    body = response.json()
    body["_params"] = params
    return body


def service_code(http: BrowserClient, client_id: str, pkce: Pkce, **extra: str) -> tuple[str, dict[str, str]]:
    """A code for a third-party (consent-screen) client: the user allows on the consent page."""
    params = authorize_params(client_id, pkce, redirect_uri=SERVICE_REDIRECT, **extra)
    url = f"{reverse('authorize')}?{urlencode(params)}"
    response = http.post(url, {"decision": "allow"})
    assert response.status_code == 302, response.content
    query = query_of(response["Location"])
    assert "code" in query, query
    return query["code"], params


@pytest.fixture
def service_tokens(browser: BrowserClient, service_client: RegisteredClient, pkce: Pkce) -> dict[str, Any]:
    """Tokens the confidential service client obtained for alice by the code flow (Basic auth)."""
    import base64 as b64

    client_id = service_client.client.client_id
    code, params = service_code(browser, client_id, pkce)
    credentials = b64.b64encode(f"{client_id}:{service_client.secret}".encode()).decode()
    response = exchange(BrowserClient(), code, pkce, client_id, redirect_uri=SERVICE_REDIRECT,
                        HTTP_AUTHORIZATION=f"Basic {credentials}")
    assert response.status_code == 200, response.content
    body = response.json()
    body["_params"] = params
    return body


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fake resolver for ``core.outbound``, and no connection off this machine (outbound_support)."""
    from .outbound_support import fake_network

    return fake_network(monkeypatch)
