"""Schemathesis over docs/openapi.yaml against a live server: every operation, every built-in
check (server errors, status codes, content types, response headers and bodies against the
schema, positive data accepted, negative data rejected, unsupported methods, ignored auth...),
with real credentials wherever the schema declares security.

Deterministic (a fixed seed, ``derandomize``) and bounded (``max_examples`` per operation).
Settings that are not Hypothesis's live in tests/schemathesis.toml.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from joserfc.jwk import ECKey
from schemathesis.config import SchemathesisConfig

from clients.flows.registration import register_client
from idp.oauth.grants.device_code import DEVICE_CODE
from idp.oauth.grants.token_exchange import TOKEN_EXCHANGE
from sessions.dpop.client import create_proof

from .conftest import BrowserAgent

pytestmark = [pytest.mark.live, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]
CONFIG = SchemathesisConfig.from_path(ROOT / "tests" / "schemathesis.toml")
SCHEMA = ROOT / "docs" / "openapi.yaml"

SERVICE_ID = "schemathesis-service"
SERVICE_REDIRECT = "https://service.example.com/callback"
APP_REDIRECT = "http://127.0.0.1/callback"
PASSWORD = "correct horse battery staple"
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@schemathesis.serializer("application/secevent+jwt")
def _secevent_jwt(ctx: Any, value: Any) -> bytes:
    """A SET goes as its compact serialization (RFC 8935 §2.1); non-strings as their text."""
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else str(value).encode()


@dataclass
class Credentials:
    issuer: str
    basic: str = ""
    bearer: str = ""
    dpop_token: str = ""
    dpop_key: ECKey | None = None

    def dpop_proof(self, method: str, path: str) -> str:
        assert self.dpop_key is not None
        return create_proof(self.dpop_key, method=method, url=f"{self.issuer}{path}", access_token=self.dpop_token)


def _user_tokens(issuer: str, client_id: str, dpop_key: ECKey | None = None) -> dict[str, Any]:
    """A code flow through the real login page, as a first-party app would run it."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": APP_REDIRECT,
        "scope": "openid profile email offline_access", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
    })
    callback = BrowserAgent(issuer).follow_to_client(f"{issuer}/authorize?{query}", APP_REDIRECT, "alice", PASSWORD)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    headers = {"DPoP": create_proof(dpop_key, method="POST", url=f"{issuer}/token")} if dpop_key else {}
    response = requests.post(f"{issuer}/token", headers=headers, timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": APP_REDIRECT,
        "client_id": client_id, "code_verifier": verifier,
    })
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def credentials(issuer: str) -> Credentials:
    """A confidential service client (HTTP Basic) pinned in tests/schemathesis.toml."""
    service = register_client(
        name="Schemathesis service", public=False, client_id=SERVICE_ID, redirect_uris=[SERVICE_REDIRECT],
        post_logout_redirect_uris=[SERVICE_REDIRECT],
        scopes=["openid", "profile", "email", "offline_access", "orders.read"],
        grant_types=["authorization_code", "refresh_token", "client_credentials", DEVICE_CODE, TOKEN_EXCHANGE],
    )
    basic = base64.b64encode(f"{SERVICE_ID}:{service.secret}".encode()).decode()
    return Credentials(issuer, basic=f"Basic {basic}")


@pytest.fixture
def user_credentials(credentials: Credentials, django_user_model: Any) -> Credentials:
    """Alice's Bearer token and DPoP-bound token (openid profile email) from a first-party app."""
    app = register_client(name="Schemathesis app", public=True, redirect_uris=[APP_REDIRECT], first_party=True)
    user = django_user_model(username="alice", email="alice@example.com", first_name="Alice")
    user.set_password(PASSWORD)
    user.save()
    key = ECKey.generate_key("P-256")
    credentials.bearer = _user_tokens(credentials.issuer, app.client.client_id)["access_token"]
    bound = _user_tokens(credentials.issuer, app.client.client_id, key)
    assert bound["token_type"] == "DPoP"
    credentials.dpop_token, credentials.dpop_key = bound["access_token"], key
    return credentials


BODY_CLIENT_AUTH = ("client_id", "client_secret", "client_assertion_type", "client_assertion")


def _authenticate(case: Any, creds: Credentials) -> dict[str, str]:
    """The credentials the operation's security asks for. A client uses one authentication
    method per request (RFC 6749 §2.3), so with HTTP Basic the body's alternatives go."""
    names = {name for requirement in case.operation.definition.raw.get("security", []) for name in requirement}
    if "client_secret_basic" in names:
        if isinstance(case.body, dict):
            case.body = {k: v for k, v in case.body.items() if k not in BODY_CLIENT_AUTH}
        return {"Authorization": creds.basic}
    return {}


def _schema(userinfo: bool) -> Any:
    """The userinfo operations, or all the others (``include`` is lost by ``parametrize``
    in Schemathesis 4.32; ``exclude`` is kept)."""
    loaded = schemathesis.openapi.from_path(SCHEMA, config=CONFIG)
    return loaded.exclude(path_regex="^(?!/userinfo$)") if userinfo else loaded.exclude(path="/userinfo")


@_schema(userinfo=False).parametrize()
@FUZZ
def test_api(case: Any, credentials: Credentials) -> None:
    case.call_and_validate(base_url=credentials.issuer, headers=_authenticate(case, credentials))


def _token_in_the_header_only(case: Any) -> None:
    """A client sends its access token one way per request (RFC 6750 §2): with the header,
    the form's ``access_token`` goes."""
    if isinstance(case.body, dict):
        case.body = {k: v for k, v in case.body.items() if k != "access_token"}


@_schema(userinfo=True).parametrize()
@FUZZ
def test_userinfo_with_a_bearer_token(case: Any, user_credentials: Credentials) -> None:
    creds = user_credentials
    _token_in_the_header_only(case)
    case.call_and_validate(base_url=creds.issuer, headers={"Authorization": f"Bearer {creds.bearer}"})


@_schema(userinfo=True).parametrize()
@FUZZ
def test_userinfo_with_a_dpop_token(case: Any, user_credentials: Credentials) -> None:
    creds = user_credentials
    _token_in_the_header_only(case)
    headers = {"Authorization": f"DPoP {creds.dpop_token}", "DPoP": creds.dpop_proof(case.method.upper(), case.path)}
    case.call_and_validate(base_url=creds.issuer, headers=headers)


def _valid(method: str, path: str, response: requests.Response) -> dict[str, Any]:
    """The response is documented: status, content type, headers and body (Schemathesis)."""
    operation = schemathesis.openapi.from_path(SCHEMA, config=CONFIG)[path][method]
    operation.validate_response(response)
    return response.json() if response.content else {}


def test_real_successes_and_refusals_match_the_schema(user_credentials: Credentials) -> None:
    """What fuzzing cannot reach (tokens issued, refreshed, introspected active) is checked here
    against the same schema."""
    creds, base = user_credentials, user_credentials.issuer
    basic = {"Authorization": creds.basic}
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/jwks.json",
                 "/.well-known/ssf-configuration", "/.well-known/assetlinks.json",
                 "/.well-known/apple-app-site-association"):
        _valid("GET", path, requests.get(base + path, timeout=10))

    service = _valid("POST", "/token", requests.post(f"{base}/token", headers=basic, timeout=10,
                                                     data={"grant_type": "client_credentials"}))
    assert service["token_type"] == "Bearer" and "refresh_token" not in service

    app_id = register_client(name="Schemathesis app 2", public=True, redirect_uris=[APP_REDIRECT],
                             first_party=True).client.client_id
    assert creds.dpop_key is not None
    tokens = _user_tokens(base, app_id, creds.dpop_key)
    assert tokens["token_type"] == "DPoP" and {"refresh_token", "id_token"} <= set(tokens)
    refresh = requests.post(f"{base}/token", timeout=10, headers={
        "DPoP": create_proof(creds.dpop_key, method="POST", url=f"{base}/token")}, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": app_id})
    refreshed = _valid("POST", "/token", refresh)
    assert refresh.headers["DPoP-Nonce"] and refreshed["refresh_token"] != tokens["refresh_token"]

    # RFC 7662 §4 policy: the service client sees its own token as active; another client's
    # refresh token is never shown to it (both answers are checked against the schema).
    for token, active in ((service["access_token"], True), (refreshed["refresh_token"], False)):
        found = _valid("POST", "/introspect", requests.post(f"{base}/introspect", headers=basic, timeout=10,
                                                            data={"token": token}))
        assert found["active"] is active
    claims = _valid("GET", "/userinfo", requests.get(f"{base}/userinfo", timeout=10,
                                                     headers={"Authorization": f"Bearer {creds.bearer}"}))
    assert claims["email"] == "alice@example.com"

    refused = requests.post(f"{base}/token", headers={"Authorization": "Basic " + base64.b64encode(
        f"{SERVICE_ID}:wrong".encode()).decode()}, data={"grant_type": "client_credentials"}, timeout=10)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic ")
    _valid("POST", "/token", refused)
    anonymous = requests.get(f"{base}/userinfo", timeout=10)
    assert anonymous.status_code == 401
    _valid("GET", "/userinfo", anonymous)
    assert _valid("POST", "/revoke", requests.post(f"{base}/revoke", timeout=10, data={
        "token": refreshed["refresh_token"], "client_id": app_id})) == {}
