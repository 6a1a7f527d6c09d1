"""The userinfo endpoint as a resource (RFC 8707, OIDC Core §5.3): any client may name its URL
(discovery's ``userinfo_endpoint``) as a ``resource``, alone or beside others, whenever the
token's scope includes ``openid``: at /authorize, /par and /device_authorization without
registering it, and at the token endpoint (code, refresh, device poll) even when the grant
did not name it. Without ``openid`` it is ``invalid_target``, whatever the client's
registration lists, and nothing is issued or stored (``idp.oauth.resources``).

Attack: a client not granted ``openid`` (or a token request dropping it) getting a token the
userinfo endpoint would take."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from clients.flows.registration import RegisteredClient, register_client
from idp.models import DeviceAuthorization
from idp.oauth.resources import userinfo_endpoint
from sessions.models import AccessToken, AuthorizationCode, DeviceSession, RefreshToken

from .conftest import MOBILE_CLIENT_ID, MOBILE_REDIRECT, authorize_params, exchange, form_post, make_pkce, query_of
from .jar_support import push
from .test_client_audiences import write_behind_validation
from .test_device_resource_narrowing import TV, approved, poll, tv  # noqa: F401 (fixture)
from .test_token import basic, refresh
from .test_userinfo_audience import API, aud_of, code_for, rows, tokens_for, userinfo

pytestmark = pytest.mark.django_db

NO_OPENID = "orders-widget"


@pytest.fixture
def no_openid(db: Any) -> RegisteredClient:
    """A public client never granted ``openid``, whose registration lists the userinfo
    endpoint anyway (an administrator's slip): it still cannot have it."""
    return register_client(name="Orders widget", public=True, redirect_uris=[MOBILE_REDIRECT], first_party=True,
                           scopes=["orders.read", "offline_access"], client_id=NO_OPENID,
                           allowed_audiences=[API, userinfo_endpoint()])


def authorize(browser: HttpClient, client_id: str, resources: list[str], **extra: str) -> dict[str, str]:
    params = [*authorize_params(client_id, make_pkce(), **extra).items(), *(("resource", r) for r in resources)]
    response = browser.get(f"{reverse('authorize')}?{urlencode(params)}")
    assert response.status_code == 302, response.content
    return query_of(response["Location"])


def assert_invalid_target(response: Any) -> None:
    assert response.status_code == 400 and response.json()["error"] == "invalid_target", response.content


# --- asked for at authorization --------------------------------------------------------------


def test_any_openid_client_may_ask_for_userinfo_without_registering_it(
        browser: HttpClient, mobile_client: RegisteredClient, user: Any) -> None:
    assert userinfo_endpoint() not in mobile_client.client.allowed_audiences
    alone = tokens_for(browser, [userinfo_endpoint()])["access_token"]
    assert aud_of(alone) == [userinfo_endpoint()]
    assert userinfo(alone).json()["sub"] == user.get_user_id()
    assert DeviceSession.objects.get().resource == [userinfo_endpoint()]  # the family keeps it


@pytest.mark.parametrize(("client_id", "scope"), [
    (NO_OPENID, "openid orders.read"),  # openid is dropped: not the client's
    (MOBILE_CLIENT_ID, "profile offline_access"),  # the client's, but not asked for
])
def test_without_openid_userinfo_is_invalid_target_at_authorize(
        browser: HttpClient, mobile_client: RegisteredClient, no_openid: RegisteredClient, client_id: str,
        scope: str) -> None:
    refused = authorize(browser, client_id, [API, userinfo_endpoint()], scope=scope)
    assert refused["error"] == "invalid_target" and "code" not in refused
    assert not AuthorizationCode.objects.exists()
    assert "code" in authorize(browser, client_id, [API], scope=scope)  # the registered one still is


def test_at_par_userinfo_needs_openid(mobile_client: RegisteredClient, no_openid: RegisteredClient) -> None:
    for client_id, scope, status in [(MOBILE_CLIENT_ID, "openid", 201), (MOBILE_CLIENT_ID, "offline_access", 400),
                                     (NO_OPENID, "openid orders.read", 400)]:
        params = {**authorize_params(client_id, make_pkce(), scope=scope), "resource": [API, userinfo_endpoint()]}
        response = push(params)
        assert response.status_code == status, (client_id, scope, response.content)
        if status == 400:
            assert response.json()["error"] == "invalid_target"


# --- named at the token endpoint ---------------------------------------------------------------


def test_the_token_request_and_the_refresh_may_add_userinfo_to_the_grant(
        browser: HttpClient, mobile_client: RegisteredClient, user: Any) -> None:
    """RFC 8707 §2.2 narrows within the grant; ``openid`` grants userinfo, named or not."""
    pkce = make_pkce()
    code = code_for(browser, pkce, [API])
    both = exchange(HttpClient(), code, pkce, MOBILE_CLIENT_ID, resource=[API, userinfo_endpoint()]).json()
    assert aud_of(both["access_token"]) == [API, userinfo_endpoint()]
    assert userinfo(both["access_token"]).status_code == 200
    assert DeviceSession.objects.get().resource == [API]  # the family keeps what was granted
    only = refresh(both["refresh_token"], MOBILE_CLIENT_ID, resource=userinfo_endpoint()).json()
    assert aud_of(only["access_token"]) == [userinfo_endpoint()] and userinfo(only["access_token"]).status_code == 200
    api = refresh(only["refresh_token"], MOBILE_CLIENT_ID, resource=API).json()
    assert aud_of(api["access_token"]) == [API] and userinfo(api["access_token"]).status_code == 401


def test_a_grant_of_no_resource_may_still_be_narrowed_to_userinfo(tokens: dict[str, Any],
                                                                    mobile_client: RegisteredClient) -> None:
    narrowed = refresh(tokens["refresh_token"], MOBILE_CLIENT_ID, resource=userinfo_endpoint())
    assert narrowed.status_code == 200 and aud_of(narrowed.json()["access_token"]) == [userinfo_endpoint()]


def test_a_refresh_dropping_openid_cannot_name_userinfo_and_changes_nothing(
        tokens: dict[str, Any], mobile_client: RegisteredClient) -> None:
    before = rows()
    assert_invalid_target(refresh(tokens["refresh_token"], MOBILE_CLIENT_ID, scope="profile",
                                  resource=userinfo_endpoint()))
    assert rows() == before
    kept = refresh(tokens["refresh_token"], MOBILE_CLIENT_ID, scope="profile")  # the token still refreshes
    assert kept.status_code == 200 and aud_of(kept.json()["access_token"]) == [MOBILE_CLIENT_ID]


def test_a_refresh_dropping_openid_cannot_name_userinfo_even_when_granted(
        browser: HttpClient, mobile_client: RegisteredClient) -> None:
    """The family was granted the userinfo endpoint (with ``openid``); a refresh without
    ``openid`` names it: ``invalid_target``, nothing spent. Named by nobody, the family's
    audiences stay the token's (/userinfo refuses it for its scope)."""
    granted = tokens_for(browser, [API, userinfo_endpoint()])
    before = rows()
    for resource in ([userinfo_endpoint()], [API, userinfo_endpoint()]):
        assert_invalid_target(refresh(granted["refresh_token"], MOBILE_CLIENT_ID, scope="profile offline_access",
                                      resource=resource))
    assert rows() == before
    narrowed = refresh(granted["refresh_token"], MOBILE_CLIENT_ID, scope="profile offline_access", resource=API)
    assert narrowed.status_code == 200 and aud_of(narrowed.json()["access_token"]) == [API]


def test_client_credentials_never_have_userinfo(service_client: RegisteredClient) -> None:
    """No user, no ``openid`` (``USER_ONLY_SCOPES``): even registered, it is refused."""
    service_client.client.allowed_audiences = [API, userinfo_endpoint()]
    service_client.client.save()
    auth = basic(service_client.client.client_id, service_client.secret or "")
    for resource in ([userinfo_endpoint()], [API, userinfo_endpoint()]):
        assert_invalid_target(form_post(HttpClient(), reverse("token"), {
            "grant_type": "client_credentials", "resource": resource}, HTTP_AUTHORIZATION=auth))
    assert not AccessToken.objects.exists()
    issued = form_post(HttpClient(), reverse("token"), {"grant_type": "client_credentials", "resource": API},
                       HTTP_AUTHORIZATION=auth)
    assert issued.status_code == 200 and aud_of(issued.json()["access_token"]) == [API]


# --- the device grant (RFC 8628) -----------------------------------------------------------------


def test_a_device_may_ask_for_userinfo_with_openid_only(browser: HttpClient, tv: RegisteredClient,  # noqa: F811
                                                        user: Any) -> None:
    without = form_post(HttpClient(), reverse("device-authorization"),
                        {"client_id": TV, "scope": "offline_access", "resource": userinfo_endpoint()})
    assert_invalid_target(without)
    granted = poll(approved(browser, [API, userinfo_endpoint()]))
    assert granted.status_code == 200 and aud_of(granted.json()["access_token"]) == [API, userinfo_endpoint()]
    assert userinfo(granted.json()["access_token"]).json()["sub"] == user.get_user_id()


def test_a_device_poll_may_add_userinfo_to_the_grant(browser: HttpClient, tv: RegisteredClient) -> None:  # noqa: F811
    polled = poll(approved(browser, [API]), [API, userinfo_endpoint()])
    assert polled.status_code == 200 and aud_of(polled.json()["access_token"]) == [API, userinfo_endpoint()]
    assert RefreshToken.objects.count() == 1


@pytest.mark.parametrize(("registered", "served"), [
    ([API, ["x"], {"a": 1}, 5, None], True),  # members of another type name nothing (they were a 500)
    ({API: True}, False), ([], False),  # a list of another shape names nothing
])
def test_registered_resources_written_behind_the_admin_are_read_as_strings_only(
        service_client: RegisteredClient, tv: RegisteredClient, registered: Any, served: bool) -> None:  # noqa: F811
    write_behind_validation(service_client.client, allowed_audiences=registered)
    write_behind_validation(tv.client, allowed_audiences=registered)
    auth = basic(service_client.client.client_id, service_client.secret or "")
    issued = form_post(HttpClient(), reverse("token"), {"grant_type": "client_credentials", "resource": API},
                       HTTP_AUTHORIZATION=auth)
    started = form_post(HttpClient(), reverse("device-authorization"),
                        {"client_id": TV, "scope": "openid", "resource": API})
    if served:
        assert issued.status_code == 200 and aud_of(issued.json()["access_token"]) == [API]
        assert started.status_code == 200, started.content
        return
    assert_invalid_target(issued)
    assert_invalid_target(started)
    assert not AccessToken.objects.exists() and not DeviceAuthorization.objects.exists()

