"""RFC 9068 §4 at /userinfo: a resource server checks that a token's ``aud`` names it. Ours
accepts a token whose ``aud`` names the token's own client (not narrowed to any resource: for
the client's use with us) or the userinfo endpoint (RFC 8707, asked for as a resource); a token
narrowed to another resource only is ``invalid_token`` (RFC 6750 §3.1), recorded
``resource.token_refused`` with ``detail`` ``wrong_audience`` and counted under that reason.

Attack: a resource server that received a token narrowed to it (RFC 8707) replays it at our
/userinfo to read the user's claims, as Bearer or with the DPoP key it does not hold, or
exchanges it (RFC 8693) for one of its own first. It learns nothing, and the token it holds
keeps working where it is meant to (introspection by that server)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.urls import reverse
from joserfc.jwk import ECKey

from clients.flows.registration import RegisteredClient
from core import jwt_tokens
from core.models import SecurityEvent
from idp.flows.resource import Refusal
from idp.oauth.resources import accepted_at, userinfo_endpoint
from ops.tests.conftest import Deltas
from sessions.dpop.client import create_proof
from sessions.models import AccessToken, DeviceSession, RefreshToken

from .conftest import MOBILE_CLIENT_ID, Pkce, authorize_params, exchange, form_post, make_pkce, query_of
from .test_introspection_revocation_userinfo import introspect
from .test_token_exchange import ORDERS, _exchange, backend  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db

API = "https://api.example.com"  # the mobile app's registered resource; the service client serves it
REFUSED = "resource.token_refused"


def code_for(browser: HttpClient, pkce: Pkce, resources: list[str], **extra: str) -> str:
    params = [*authorize_params(MOBILE_CLIENT_ID, pkce, **extra).items(), *(("resource", r) for r in resources)]
    response = browser.get(f"{reverse('authorize')}?{urlencode(params)}")
    assert response.status_code == 302, response.content
    return query_of(response["Location"])["code"]


def tokens_for(browser: HttpClient, resources: list[str], **token_request: Any) -> dict[str, Any]:
    """The mobile app's tokens, for ``resources`` asked at authorization (RFC 8707)."""
    pkce = make_pkce()
    response = exchange(HttpClient(), code_for(browser, pkce, resources), pkce, MOBILE_CLIENT_ID, **token_request)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def aud_of(access_token: str) -> list[str]:
    aud = jwt_tokens.verify(access_token, typ="at+jwt")["aud"]
    return aud if isinstance(aud, list) else [aud]


def userinfo(access_token: str, how: str = "header") -> Any:
    if how == "form":
        return form_post(HttpClient(), reverse("userinfo"), {"access_token": access_token})
    return HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {access_token}")


def with_proof(access_token: str, key: ECKey) -> Any:
    proof = create_proof(key, method="GET", url=userinfo_endpoint(), access_token=access_token)
    return HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"DPoP {access_token}", HTTP_DPOP=proof)


def rows() -> tuple[list[Any], ...]:
    """Every row a refusal must leave alone."""
    return (list(AccessToken.objects.order_by("pk").values()), list(RefreshToken.objects.order_by("pk").values()),
            list(DeviceSession.objects.order_by("pk").values()))


def events() -> list[tuple[str, str, str]]:
    return list(SecurityEvent.objects.order_by("pk").values_list("event_type", "outcome", "reason"))


def assert_wrong_audience(response: Any, scheme: str = "Bearer") -> None:
    """RFC 6750 §3.1 ``invalid_token``: the error alone, no claim of the user."""
    assert response.status_code == 401, response.content
    body = response.json()
    assert set(body) == {"error", "error_description"} and body["error"] == "invalid_token"
    assert f"resource={userinfo_endpoint()}" in body["error_description"]
    assert response["WWW-Authenticate"] == (
        f'{scheme} error="invalid_token", error_description="{body["error_description"]}"')
    assert "no-store" in response["Cache-Control"]
    latest = SecurityEvent.objects.filter(event_type=REFUSED).latest("pk")
    assert (latest.outcome, latest.reason, latest.details["detail"]) == ("denied", "invalid_token",
                                                                         Refusal.WRONG_AUDIENCE)
    assert latest.details["path"] == reverse("userinfo")


@pytest.mark.parametrize("how", ["header", "form"])
def test_a_token_narrowed_to_another_resource_is_refused_and_reveals_nothing(
        browser: HttpClient, mobile_client: RegisteredClient, service_client: RegisteredClient, user: Any,
        how: str, django_capture_on_commit_callbacks: Any) -> None:
    narrowed = tokens_for(browser, [API])["access_token"]
    assert aud_of(narrowed) == [API]
    before, recorded = rows(), events()
    counted = Deltas(("vigil_resource_token_refusals_total", {"reason": Refusal.WRONG_AUDIENCE}))
    with django_capture_on_commit_callbacks(execute=True):
        response = userinfo(narrowed, how)
    assert_wrong_audience(response)
    assert user.get_user_id() not in response.content.decode() and "alice" not in response.content.decode()
    assert events() == [*recorded, (REFUSED, "denied", "invalid_token")]
    assert rows() == before  # refused, not revoked: nothing changed
    assert counted.gained() == [1]
    # Still the API's token: its resource server may introspect it (RFC 7662 §4).
    assert introspect(service_client, narrowed).json()["active"] is True


def test_a_token_not_narrowed_is_for_its_client_and_accepted(tokens: dict[str, Any], user: Any) -> None:
    assert aud_of(tokens["access_token"]) == [MOBILE_CLIENT_ID]
    for how in ("header", "form"):
        response = userinfo(tokens["access_token"], how)
        assert response.status_code == 200 and response.json()["sub"] == user.get_user_id()
    assert not SecurityEvent.objects.filter(event_type=REFUSED).exists()


def test_a_token_for_a_resource_and_userinfo_is_accepted_and_still_for_the_resource(
        browser: HttpClient, mobile_client: RegisteredClient, service_client: RegisteredClient, user: Any) -> None:
    both = tokens_for(browser, [API, userinfo_endpoint()])["access_token"]
    assert aud_of(both) == [API, userinfo_endpoint()]
    response = userinfo(both)
    assert response.status_code == 200 and response.json()["email"] == "alice@example.com"
    introspected = introspect(service_client, both).json()  # the API's server still accepts it
    assert introspected["active"] is True and API in introspected["aud"]


@pytest.fixture
def dpop_key() -> ECKey:
    return ECKey.generate_key("P-256", private=True)


def dpop_tokens_for(browser: HttpClient, key: ECKey, resources: list[str]) -> str:
    proof = create_proof(key, method="POST", url=f"{settings.IDP_ISSUER}/token")
    body = tokens_for(browser, resources, HTTP_DPOP=proof)
    assert body["token_type"] == "DPoP"
    return str(body["access_token"])


def test_dpop_bound_tokens_follow_the_same_rule(browser: HttpClient, mobile_client: RegisteredClient,
                                                 dpop_key: ECKey, user: Any) -> None:
    """RFC 9449 §7: the key's holder, with a good proof, is still refused a token meant for
    another resource (its challenge names the DPoP scheme); the key's holder of a token for
    its client, or for userinfo beside the API, is answered."""
    narrowed = dpop_tokens_for(browser, dpop_key, [API])
    before = rows()
    assert_wrong_audience(with_proof(narrowed, dpop_key), scheme="DPoP")
    assert_wrong_audience(userinfo(narrowed), scheme="DPoP")  # as Bearer: the audience is judged first
    assert rows() == before
    for resources in ([], [API, userinfo_endpoint()], [userinfo_endpoint()]):
        accepted = with_proof(dpop_tokens_for(browser, dpop_key, resources), dpop_key)
        assert accepted.status_code == 200 and accepted.json()["sub"] == user.get_user_id(), resources


def test_the_resource_server_can_neither_replay_nor_exchange_its_way_to_userinfo(
        browser: HttpClient, mobile_client: RegisteredClient, backend: RegisteredClient) -> None:  # noqa: F811
    """The backend serves the API and may exchange the app's tokens for the orders API
    (RFC 8693); the exchanged token is the backend's, for orders: refused too. Only an
    exchange audience an administrator granted it, the userinfo endpoint, reads userinfo."""
    narrowed = tokens_for(browser, [API])["access_token"]
    assert_wrong_audience(userinfo(narrowed))
    exchanged = _exchange(backend, narrowed, scope="openid profile")
    assert exchanged.status_code == 200, exchanged.content
    assert aud_of(exchanged.json()["access_token"]) == [ORDERS]
    assert_wrong_audience(userinfo(exchanged.json()["access_token"]))
    refused = _exchange(backend, narrowed, scope="openid profile", audience=userinfo_endpoint())
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"  # not without the admin
    backend.client.token_exchange_audiences = [ORDERS, userinfo_endpoint()]
    backend.client.save()
    granted = _exchange(backend, narrowed, scope="openid profile", audience=userinfo_endpoint())
    assert granted.status_code == 200, granted.content
    assert userinfo(granted.json()["access_token"]).json()["preferred_username"] == "alice"


@pytest.mark.parametrize(("aud", "client_id", "accepted"), [
    ("app", "app", True),
    (["https://api.example.com", "app"], "app", True),
    ("https://id.example.com/userinfo", "app", True),
    (["https://api.example.com", "https://id.example.com/userinfo"], "app", True),
    ("https://api.example.com", "app", False),
    (["https://api.example.com", "other-app"], "app", False),
    ("https://id.example.com/userinfo/", "app", False),  # compared exactly
    ("https://id.example.com", "app", False),  # the issuer is not the endpoint
    (None, "app", False), ([], "app", False), (42, "app", False), ([42, None], "app", False),
    ("", "", False), ("app", None, False), (["app"], 7, False),
])
def test_the_audience_rule(aud: Any, client_id: Any, accepted: bool) -> None:
    assert accepted_at({"aud": aud, "client_id": client_id}, "https://id.example.com/userinfo") is accepted


def test_discovery_publishes_the_identifier_userinfo_accepts(client: HttpClient) -> None:
    published = client.get("/.well-known/openid-configuration").json()["userinfo_endpoint"]
    assert published == userinfo_endpoint() == f"{settings.IDP_ISSUER}{reverse('userinfo')}"

