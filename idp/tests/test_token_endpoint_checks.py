"""Token-endpoint checks that had no test of their own (issue 19, /work/notes/checks.md):
S7 no client credentials (RFC 6749 §2.3, §5.2 ``invalid_client``), S13 a grant the client is not
registered for (RFC 6749 §5.2 ``unauthorized_client``), C1 an oversized refresh token (RFC 6749
§6, ``invalid_grant``), D7 a ``code_verifier`` for a code that had no challenge (RFC 9700 §4.8)
and D8 the ``code_verifier`` syntax (RFC 7636 §4.1).

Each test forges the request, asserts the exact RFC 6749 §5.2 error body, that nothing changed
(codes, sessions, refresh and access tokens) and that the refusal was recorded."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clients.flows.registration import register_client
from core.models import SecurityEvent
from sessions.models import AccessToken, AuthorizationCode, DeviceSession, RefreshToken

from .conftest import SERVICE_REDIRECT, authorize_params, exchange, form_post, get_code, make_pkce, query_of

pytestmark = pytest.mark.django_db


def snapshot() -> dict[str, Any]:
    """Every row a token request could change, as comparable values."""
    return {
        "codes": list(AuthorizationCode.objects.order_by("pk").values_list("pk", "used_at")),
        "sessions": list(DeviceSession.objects.order_by("pk").values_list("pk", "status", "status_reason",
                                                                         "last_refresh_at")),
        "refresh": list(RefreshToken.objects.order_by("pk").values_list("pk", "rotated_at", "revoked_at")),
        "access": list(AccessToken.objects.order_by("pk").values_list("jti", flat=True)),
    }


def last_error_event() -> SecurityEvent:
    event = SecurityEvent.objects.filter(event_type="oauth.error").order_by("-id").first()
    assert event is not None
    return event


def token_post(data: dict[str, Any], **headers: Any) -> Any:
    return form_post(HttpClient(), reverse("token"), data, **headers)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def assert_error(response: Any, status: int, error: str) -> dict[str, Any]:
    """An RFC 6749 §5.2 JSON error body, never cached (§5.1)."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    assert set(body) <= {"error", "error_description", "error_uri"}
    return body


# --- S7: no client credentials at all -> invalid_client (RFC 6749 §2.3, §5.2) ---------------------
def _no_credentials_requests(tokens: dict[str, Any], code: str, pkce: Any) -> dict[str, dict[str, str]]:
    return {
        "refresh_token": {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        "authorization_code": {"grant_type": "authorization_code", "code": code, "code_verifier": pkce.verifier,
                               "redirect_uri": "com.example.app:/oauth2redirect"},
        "client_credentials": {"grant_type": "client_credentials"},
    }


@pytest.mark.parametrize("grant", ["refresh_token", "authorization_code", "client_credentials"])
@pytest.mark.parametrize("client_id", [None, ""], ids=["absent", "empty"])
def test_no_client_credentials_is_invalid_client(tokens, browser, mobile_client, grant, client_id):
    pkce = make_pkce()
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    data = _no_credentials_requests(tokens, code, pkce)[grant] | {"client_id": client_id}
    before = snapshot()
    response = token_post(data)
    body = assert_error(response, 401, "invalid_client")
    assert body["error_description"] == "Client authentication is required."
    assert response["WWW-Authenticate"].startswith("Basic ")
    assert snapshot() == before
    event = last_error_event()
    assert event.reason == "invalid_client" and event.details["auth_failure"] == "missing_credentials"
    # The same requests with the client named go through: the refusal took nothing away.
    if grant != "client_credentials":
        assert token_post(data | {"client_id": mobile_client.client.client_id}).status_code == 200


def machine_client() -> Any:
    """A confidential client registered for client_credentials only."""
    machine = register_client(name="Machine", public=False, redirect_uris=[], grant_types=["client_credentials"],
                              scopes=["orders.read"])
    assert machine.secret
    return machine


# --- S13: a grant the client is not registered for -> unauthorized_client (RFC 6749 §5.2) --------
def _drop_grant(client: Any, grant: str, capture: Any) -> None:
    with capture(execute=True):  # the config copies follow the admin's change (core.config_cache)
        client.grant_types = [g for g in client.grant_types if g != grant]
        client.save(update_fields=["grant_types"])


def test_refresh_by_a_client_no_longer_registered_for_refresh_token(tokens, mobile_client,
                                                                    django_capture_on_commit_callbacks):
    client = mobile_client.client
    _drop_grant(client, "refresh_token", django_capture_on_commit_callbacks)
    before = snapshot()
    response = token_post({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                           "client_id": client.client_id})
    assert_error(response, 400, "unauthorized_client")
    assert snapshot() == before
    assert last_error_event().reason == "unauthorized_client"
    assert last_error_event().client_id == client.client_id


def test_a_confidential_client_without_refresh_token_cannot_use_one(tokens, mobile_client, db):
    """A client registered for client_credentials only presents another client's refresh token:
    refused on the grant type before the token is even looked up (no reuse, nothing revoked)."""
    machine = machine_client()
    before = snapshot()
    with CaptureQueriesContext(connection) as queries:
        response = token_post({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                              HTTP_AUTHORIZATION=basic(machine.client.client_id, machine.secret or ""))
    assert_error(response, 400, "unauthorized_client")
    assert not [q for q in queries.captured_queries if "sessions_refresh_token" in q["sql"]]
    assert snapshot() == before
    assert token_post({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                       "client_id": mobile_client.client.client_id}).status_code == 200


def test_code_exchange_by_a_client_no_longer_registered_for_authorization_code(browser, mobile_client, pkce,
                                                                              django_capture_on_commit_callbacks):
    client = mobile_client.client
    code, _ = get_code(browser, client.client_id, pkce)
    _drop_grant(client, "authorization_code", django_capture_on_commit_callbacks)
    before = snapshot()
    response = exchange(HttpClient(), code, pkce, client.client_id)
    assert_error(response, 400, "unauthorized_client")
    assert snapshot() == before
    assert AuthorizationCode.objects.get().used_at is None
    assert last_error_event().reason == "unauthorized_client"


def test_code_exchange_by_a_client_credentials_only_client(browser, mobile_client, pkce, db):
    machine = machine_client()
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    before = snapshot()
    response = exchange(HttpClient(), code, pkce, machine.client.client_id,
                        HTTP_AUTHORIZATION=basic(machine.client.client_id, machine.secret or ""))
    assert_error(response, 400, "unauthorized_client")
    assert snapshot() == before
    assert exchange(HttpClient(), code, pkce, mobile_client.client.client_id).status_code == 200


# --- C1: a refresh token over 512 characters -> invalid_grant, never looked up ----------------
@pytest.mark.parametrize("length", [513, 4096])
def test_an_oversized_refresh_token_is_invalid_grant_and_not_looked_up(tokens, mobile_client, length):
    oversized = (tokens["refresh_token"] * (length // len(tokens["refresh_token"]) + 1))[:length]
    before = snapshot()
    with CaptureQueriesContext(connection) as queries:
        response = token_post({"grant_type": "refresh_token", "refresh_token": oversized,
                               "client_id": mobile_client.client.client_id})
    assert_error(response, 400, "invalid_grant")
    assert not [q for q in queries.captured_queries if "sessions_refresh_token" in q["sql"]]
    assert snapshot() == before
    assert last_error_event().reason == "invalid_grant"
    assert token_post({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                       "client_id": mobile_client.client.client_id}).status_code == 200


def test_the_refresh_token_limit_is_512_characters(mobile_client):
    """At the limit the token is looked up (and is unknown); one more character is not."""
    def lookups(value: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = token_post({"grant_type": "refresh_token", "refresh_token": value,
                                   "client_id": mobile_client.client.client_id})
        assert_error(response, 400, "invalid_grant")
        return len([q for q in queries.captured_queries if "sessions_refresh_token" in q["sql"]])

    assert lookups("a" * 512) == 1
    assert lookups("a" * 513) == 0


# --- D7: code_verifier for a code that had no code_challenge (RFC 9700 §4.8) -------------------
@pytest.fixture
def nonce_client(db: Any, settings: Any) -> Any:
    """A confidential OpenID client allowed to use nonce instead of PKCE (RFC 9700 §2.1.1)."""
    settings.IDP_REQUIRE_PKCE_FOR_ALL_CLIENTS = False
    return register_client(name="Nonce RP", public=False, redirect_uris=[SERVICE_REDIRECT], require_pkce=False,
                           scopes=["openid", "profile", "offline_access"])


def _code_without_challenge(browser: Any, client_id: str) -> str:
    params = authorize_params(client_id, make_pkce(), redirect_uri=SERVICE_REDIRECT, code_challenge=None,
                              code_challenge_method=None)
    response = browser.post(f"{reverse('authorize')}?{urlencode(params)}", {"decision": "allow"})
    assert response.status_code == 302, response.content
    query = query_of(response["Location"])
    assert "code" in query, query
    assert AuthorizationCode.objects.get().code_challenge == ""
    return query["code"]


def test_a_code_verifier_for_a_code_without_challenge_is_refused(browser, nonce_client):
    """An attacker who injected a code obtained without PKCE cannot pass it off as a PKCE exchange:
    the verifier is refused rather than ignored (RFC 9700 §4.8)."""
    client_id, secret = nonce_client.client.client_id, nonce_client.secret
    code = _code_without_challenge(browser, client_id)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": SERVICE_REDIRECT}
    before = snapshot()
    response = token_post(data | {"code_verifier": make_pkce().verifier}, HTTP_AUTHORIZATION=basic(client_id, secret))
    body = assert_error(response, 400, "invalid_request")
    assert "code_verifier" in body["error_description"] and "code_challenge" in body["error_description"]
    assert snapshot() == before
    assert last_error_event().reason == "invalid_request"
    # Without the verifier the same code is still the client's (nothing was used up).
    assert token_post(data, HTTP_AUTHORIZATION=basic(client_id, secret)).status_code == 200


# --- D8: code_verifier syntax, 43-128 unreserved characters (RFC 7636 §4.1) --------------------
@pytest.mark.parametrize("verifier", [
    "a" * 42,
    "a" * 129,
    "a" * 42 + "+",
    "a" * 42 + "/",
    "a" * 42 + "=",
    "a" * 42 + " ",
    "a" * 42 + "é",
    "a" * 20 + "%41" + "a" * 20,
], ids=["42-chars", "129-chars", "plus", "slash", "equals", "space", "non-ascii", "percent"])
def test_a_malformed_code_verifier_is_refused(browser, mobile_client, pkce, verifier):
    """Syntax is checked before the S256 comparison; a malformed parameter is ``invalid_request``
    (RFC 6749 §5.2), the RFC 7636 §4.6 ``invalid_grant`` being for a well-formed verifier that
    does not match (test_token.py::test_wrong_pkce_verifier_is_invalid_grant)."""
    client_id = mobile_client.client.client_id
    code, _ = get_code(browser, client_id, pkce)
    before = snapshot()
    response = exchange(HttpClient(), code, pkce, client_id, code_verifier=verifier)
    body = assert_error(response, 400, "invalid_request")
    assert body["error_description"] == "Invalid 'code_verifier'"
    assert snapshot() == before
    assert last_error_event().reason == "invalid_request"
    assert exchange(HttpClient(), code, pkce, client_id).status_code == 200


@pytest.mark.parametrize("length", [43, 128])
def test_a_verifier_at_either_length_bound_is_accepted(browser, mobile_client, length):
    import hashlib

    from core.encoding import b64url_encode

    verifier = ("abcXYZ019-._~" * 10)[:length]
    pkce = make_pkce()
    pkce.verifier, pkce.challenge = verifier, b64url_encode(hashlib.sha256(verifier.encode()).digest())
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    assert exchange(HttpClient(), code, pkce, mobile_client.client.client_id).status_code == 200
