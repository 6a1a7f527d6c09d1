"""Token exchange (RFC 8693) for relying services: equal or narrower scope, never wider; only
audiences the service is allowed; ``act`` for delegation (§4.1); DPoP-bound subject tokens
need the proof (RFC 9449); every refusal is a security event and changes nothing."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from django.test import Client as HttpClient
from django.urls import reverse
from joserfc.jwk import ECKey

from clients.flows.registration import RegisteredClient, register_client
from core import jwt_tokens
from core.events import EventType
from core.models import SecurityEvent
from idp.oauth.grants.token_exchange import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE
from sessions.dpop import thumbprint
from sessions.dpop.client import create_proof
from sessions.flows.revocation import Reason, revoke_session
from sessions.models import AccessToken, DeviceSession

from .conftest import MOBILE_CLIENT_ID, exchange, form_post, get_code

pytestmark = pytest.mark.django_db
ORDERS = "https://orders.example.com"


@pytest.fixture
def backend(db: Any) -> RegisteredClient:
    """The mobile app's backend: serves the app's tokens, may exchange them for the orders API."""
    return register_client(
        name="Backend", public=False, redirect_uris=[], grant_types=["client_credentials", TOKEN_EXCHANGE],
        served_resources=[MOBILE_CLIENT_ID, "https://api.example.com"], token_exchange_audiences=[ORDERS],
        client_id="backend",
    )


def _basic(registered: RegisteredClient) -> dict[str, str]:
    raw = f"{registered.client.client_id}:{registered.secret}".encode()
    return {"HTTP_AUTHORIZATION": f"Basic {base64.b64encode(raw).decode()}"}


def _exchange(registered: RegisteredClient, subject: str, **extra: Any) -> Any:
    data = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS_TOKEN_TYPE,
            "audience": ORDERS}
    headers = {k: v for k, v in extra.items() if k.startswith("HTTP_")}
    data.update({k: v for k, v in extra.items() if not k.startswith("HTTP_")})
    return form_post(HttpClient(), reverse("token"), data, **{**_basic(registered), **headers})


def _refused(response: Any, error: str, reason: str) -> None:
    assert response.status_code in (400, 401), response.content
    assert response.json()["error"] == error, response.json()
    assert response["Cache-Control"] == "no-store"
    assert SecurityEvent.objects.filter(event_type=EventType.OAUTH_TOKEN_EXCHANGE_REFUSED, reason=reason).exists()


def test_narrower_scope_for_a_downstream_audience(tokens: dict[str, Any], backend: RegisteredClient, user: Any) -> None:
    response = _exchange(backend, tokens["access_token"], scope="profile")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE and body["token_type"] == "Bearer"
    assert body["scope"] == "profile" and "refresh_token" not in body and "id_token" not in body
    claims = jwt_tokens.verify(body["access_token"], typ="at+jwt", audience=ORDERS)
    subject = jwt_tokens.verify(tokens["access_token"], typ="at+jwt")
    assert claims["sub"] == user.get_user_id() and claims["client_id"] == "backend"
    assert claims["act"] == {"sub": "backend"}
    assert (claims["sid"], claims["acr"], claims["auth_time"]) == (subject["sid"], subject["acr"], subject["auth_time"])
    issued = SecurityEvent.objects.get(event_type=EventType.OAUTH_TOKEN_ISSUED, details__grant_type="token_exchange")
    assert issued.details["subject_jti"] == subject["jti"]


def test_without_scope_the_subject_scope_minus_offline_access(tokens: dict[str, Any], backend: RegisteredClient) -> None:
    body = _exchange(backend, tokens["access_token"], resource=ORDERS, audience=None).json()
    assert set(body["scope"].split()) == {"openid", "profile", "email"}


def test_ending_the_session_ends_the_exchanged_token(tokens: dict[str, Any], backend: RegisteredClient,
                                                     user: Any) -> None:
    body = _exchange(backend, tokens["access_token"]).json()
    jti = jwt_tokens.verify(body["access_token"], typ="at+jwt")["jti"]
    revoke_session(DeviceSession.objects.get(user=user), Reason.REVOKED_BY_ADMIN)
    assert not AccessToken.objects.select_related("session").get(jti=jti).is_active()


def test_an_exchanged_token_exchanged_again_nests_the_actors(tokens: dict[str, Any], backend: RegisteredClient) -> None:
    orders = register_client(name="Orders", public=False, redirect_uris=[], grant_types=[TOKEN_EXCHANGE],
                             served_resources=[ORDERS], token_exchange_audiences=["https://billing.example.com"],
                             client_id="orders")
    first = _exchange(backend, tokens["access_token"], scope="profile").json()["access_token"]
    second = _exchange(orders, first, audience="https://billing.example.com")
    assert second.status_code == 200, second.content
    claims = jwt_tokens.verify(second.json()["access_token"], typ="at+jwt")
    assert claims["act"] == {"sub": "orders", "act": {"sub": "backend"}} and claims["scope"] == "profile"


# --- refusals: each recorded, none issues anything -----------------------------------------


@pytest.mark.parametrize(("extra", "error", "reason"), [
    ({"scope": "profile orders.read"}, "invalid_scope", "scope_widened"),
    ({"scope": "openid offline_access"}, "invalid_scope", "scope_widened"),
    ({"audience": "https://evil.example.com"}, "invalid_target", "audience_not_allowed"),
    ({"audience": [ORDERS, "https://evil.example.com"]}, "invalid_target", "audience_not_allowed"),
    ({"audience": None}, "invalid_target", "audience_missing"),
    ({"subject_token": "not-a-jwt"}, "invalid_request", "subject_token_invalid"),
    ({"subject_token": None}, "invalid_request", "missing_subject_token"),
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}, "invalid_request",
     "unsupported_subject_token_type"),
    ({"actor_token": "x", "actor_token_type": ACCESS_TOKEN_TYPE}, "invalid_request", "actor_token_unsupported"),
    ({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "invalid_request",
     "unsupported_requested_token_type"),
])
def test_refused_exchanges_change_nothing(tokens: dict[str, Any], backend: RegisteredClient, extra: dict[str, Any],
                                          error: str, reason: str) -> None:
    before = AccessToken.objects.count()
    _refused(_exchange(backend, tokens["access_token"], **extra), error, reason)
    assert AccessToken.objects.count() == before


def test_a_revoked_subject_token_is_refused(tokens: dict[str, Any], backend: RegisteredClient, user: Any) -> None:
    revoke_session(DeviceSession.objects.get(user=user), Reason.REVOKED_BY_ADMIN)
    _refused(_exchange(backend, tokens["access_token"]), "invalid_request", "subject_token_inactive")


def test_a_token_not_aimed_at_the_service_is_refused(tokens: dict[str, Any]) -> None:
    """Wrong client: a service may only exchange tokens that were sent to it."""
    stranger = register_client(name="Stranger", public=False, redirect_uris=[], grant_types=[TOKEN_EXCHANGE],
                               token_exchange_audiences=[ORDERS])
    before = AccessToken.objects.count()
    _refused(_exchange(stranger, tokens["access_token"]), "invalid_request", "subject_token_not_for_client")
    assert AccessToken.objects.count() == before


def test_a_client_token_without_a_user_is_refused(backend: RegisteredClient) -> None:
    own = form_post(HttpClient(), reverse("token"), {"grant_type": "client_credentials"}, **_basic(backend))
    _refused(_exchange(backend, own.json()["access_token"]), "invalid_request", "subject_token_inactive")


def test_a_client_not_registered_for_the_grant_is_refused(tokens: dict[str, Any], service_client: Any) -> None:
    response = _exchange(service_client, tokens["access_token"])
    _refused(response, "unauthorized_client", "grant_not_allowed")


def test_a_public_client_cannot_exchange(tokens: dict[str, Any], mobile_client: Any) -> None:
    data = {"grant_type": TOKEN_EXCHANGE, "subject_token": tokens["access_token"],
            "subject_token_type": ACCESS_TOKEN_TYPE, "audience": ORDERS, "client_id": MOBILE_CLIENT_ID}
    response = form_post(HttpClient(), reverse("token"), data)
    assert response.status_code in (400, 401) and response.json()["error"] in ("unauthorized_client", "invalid_client")
    with pytest.raises(Exception, match="token exchange"):
        register_client(name="App", public=True, redirect_uris=["com.example.x:/cb"],
                        grant_types=["authorization_code", TOKEN_EXCHANGE])


def test_bad_client_credentials_are_refused(tokens: dict[str, Any], backend: RegisteredClient) -> None:
    response = _exchange(backend, tokens["access_token"], HTTP_AUTHORIZATION="Basic " +
                         base64.b64encode(b"backend:wrong").decode())
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


# --- DPoP-bound subject tokens (RFC 9449) ---------------------------------------------------


@pytest.fixture
def dpop_key() -> ECKey:
    return ECKey.generate_key("P-256", private=True)


@pytest.fixture
def bound_tokens(browser: Any, mobile_client: Any, pkce: Any, dpop_key: ECKey) -> dict[str, Any]:
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    proof = create_proof(dpop_key, method="POST", url=f"{settings.IDP_ISSUER}/token")
    response = exchange(HttpClient(), code, pkce, mobile_client.client.client_id, HTTP_DPOP=proof)
    assert response.status_code == 200 and response.json()["token_type"] == "DPoP"
    return response.json()


def test_a_dpop_bound_subject_token_needs_the_proof(bound_tokens: dict[str, Any], backend: RegisteredClient) -> None:
    before = AccessToken.objects.count()
    _refused(_exchange(backend, bound_tokens["access_token"]), "invalid_dpop_proof", "dpop_proof_required")
    other = create_proof(ECKey.generate_key("P-256", private=True), method="POST", url=f"{settings.IDP_ISSUER}/token")
    _refused(_exchange(backend, bound_tokens["access_token"], HTTP_DPOP=other), "invalid_dpop_proof",
             "dpop_proof_required")
    assert AccessToken.objects.count() == before


def test_with_the_proof_the_new_token_is_bound_to_the_same_key(bound_tokens: dict[str, Any],
                                                               backend: RegisteredClient, dpop_key: ECKey) -> None:
    proof = create_proof(dpop_key, method="POST", url=f"{settings.IDP_ISSUER}/token")
    response = _exchange(backend, bound_tokens["access_token"], HTTP_DPOP=proof)
    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "DPoP"
    claims = jwt_tokens.verify(response.json()["access_token"], typ="at+jwt")
    assert claims["cnf"] == {"jkt": thumbprint(dpop_key.as_dict(private=False))}


# --- a third-party client against the live server ----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_authlib_client_exchanges_against_the_live_server(live_server: Any, backend: RegisteredClient,
                                                          tokens: dict[str, Any]) -> None:
    session = OAuth2Session(backend.client.client_id, backend.secret, token_endpoint_auth_method="client_secret_basic")
    token = session.fetch_token(f"{live_server.url}/token", grant_type=TOKEN_EXCHANGE,
                                subject_token=tokens["access_token"], subject_token_type=ACCESS_TOKEN_TYPE,
                                audience=ORDERS, scope="email")
    assert token["issued_token_type"] == ACCESS_TOKEN_TYPE and token["scope"] == "email"
    refused = session.post(f"{live_server.url}/token", data={
        "grant_type": TOKEN_EXCHANGE, "subject_token": tokens["access_token"],
        "subject_token_type": ACCESS_TOKEN_TYPE, "audience": ORDERS, "scope": "email orders.read",
    }, withhold_token=True, auth=(backend.client.client_id, backend.secret))
    session.close()  # no kept-alive connection holding a live-server thread (and its database connection)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
