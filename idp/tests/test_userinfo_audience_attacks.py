"""Attacks on the audience rule of /userinfo (RFC 9068 §4, ``idp.oauth.resources``) through
the other grants: a token narrowed to a resource (RFC 8707) must not become one /userinfo
takes, unless its own client asks for the userinfo endpoint, exactly as discovery publishes
it, with ``openid``.

- a narrowed family refreshed (or its code redeemed, its device code polled) naming the
  client's own ``client_id``, or the userinfo endpoint spelled otherwise: ``invalid_target``,
  nothing changed; refreshed without ``resource`` (or without ``openid``) it stays narrowed;
- the same spellings at /authorize, in a request object (RFC 9101) and at /par;
- a service exchanging (RFC 8693) for the userinfo endpoint spelled otherwise (written behind
  the rules), or for the app's own ``client_id``: refused, or a token /userinfo refuses."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from clients.flows.registration import RegisteredClient
from core.issuer_urls import userinfo_endpoint
from sessions.models import AccessToken, AuthorizationCode

from .conftest import MOBILE_CLIENT_ID, SERVICE_REDIRECT, authorize_params, exchange, make_pkce, query_of
from .jar_support import authenticated, keyed_client, push, request_object, request_params
from .test_client_audiences import write_behind_validation
from .test_device_resource_narrowing import TV, approved, poll, state, tv  # noqa: F401 (fixture)
from .test_token import refresh
from .test_token_exchange import _exchange, backend  # noqa: F401 (fixture)
from .test_userinfo_audience import API, assert_wrong_audience, aud_of, code_for, rows, tokens_for, userinfo

pytestmark = pytest.mark.django_db


def other_spellings() -> list[str]:
    """The userinfo endpoint as other URLs: /userinfo compares exactly and takes none of them."""
    endpoint = userinfo_endpoint()  # http://localhost:8000/userinfo in tests
    return [f"{endpoint}/", endpoint.replace("localhost", "LOCALHOST"), endpoint.replace("/userinfo", "/%75serinfo"),
            endpoint.replace("localhost", "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54"),
            endpoint.replace("/userinfo", "/./userinfo"), endpoint.replace("/userinfo", "\\userinfo"),
            f"{endpoint}?", f"{endpoint}#"]


def assert_invalid_target(response: Any) -> None:
    assert response.status_code == 400 and response.json()["error"] == "invalid_target", response.content


# --- refresh and code exchange ----------------------------------------------------------------
def test_a_narrowed_family_regains_neither_its_client_id_nor_userinfo_otherwise_spelled(
        browser: HttpClient, mobile_client: RegisteredClient) -> None:
    narrowed = tokens_for(browser, [API])
    assert aud_of(narrowed["access_token"]) == [API]
    before = rows()
    for resource in [MOBILE_CLIENT_ID, *other_spellings(), [API, MOBILE_CLIENT_ID]]:
        assert_invalid_target(refresh(narrowed["refresh_token"], MOBILE_CLIENT_ID, resource=resource))
    assert rows() == before  # the presented refresh token is unspent
    for scope in ({}, {"scope": "openid profile"}, {"scope": "profile"}):
        again = refresh(narrowed["refresh_token"], MOBILE_CLIENT_ID, **scope).json()
        assert aud_of(again["access_token"]) == [API], scope  # never back to the client's own client_id
        assert_wrong_audience(userinfo(again["access_token"]))
        narrowed = again


@pytest.mark.parametrize("resource", [MOBILE_CLIENT_ID, "http://localhost:8000/userinfo/"])
def test_a_code_for_a_resource_is_not_redeemed_for_the_client_id(browser: HttpClient, mobile_client: RegisteredClient,
                                                                  resource: str) -> None:
    pkce = make_pkce()
    code = code_for(browser, pkce, [API])
    before = (rows(), list(AuthorizationCode.objects.values()))
    assert_invalid_target(exchange(HttpClient(), code, pkce, MOBILE_CLIENT_ID, resource=resource))
    assert (rows(), list(AuthorizationCode.objects.values())) == before  # the code is unspent
    redeemed = exchange(HttpClient(), code, pkce, MOBILE_CLIENT_ID)
    assert redeemed.status_code == 200 and aud_of(redeemed.json()["access_token"]) == [API]


def test_a_device_poll_names_neither_the_client_id_nor_userinfo_otherwise_spelled(
        browser: HttpClient, tv: RegisteredClient) -> None:  # noqa: F811
    device_code = approved(browser, [API])
    for resource in [TV, *other_spellings()[:3]]:
        before = state()
        assert_invalid_target(poll(device_code, resource))
        assert state() == before  # not redeemed, nothing issued
    polled = poll(device_code)
    assert polled.status_code == 200 and aud_of(polled.json()["access_token"]) == [API]
    assert_wrong_audience(userinfo(polled.json()["access_token"]))


# --- authorization requests ---------------------------------------------------------------------
def test_authorize_takes_userinfo_only_as_discovery_spells_it(browser: HttpClient,
                                                              mobile_client: RegisteredClient) -> None:
    for resource in [*other_spellings(), MOBILE_CLIENT_ID]:
        params = [*authorize_params(MOBILE_CLIENT_ID, make_pkce()).items(), ("resource", resource)]
        query = query_of(browser.get(f"{reverse('authorize')}?{urlencode(params)}")["Location"])
        assert query["error"] == "invalid_target" and "code" not in query, resource
    assert not AuthorizationCode.objects.exists()


def test_a_request_object_narrows_as_the_query_does(browser: HttpClient) -> None:
    """RFC 9101: ``resource`` in a signed request object (a list: RFC 8707 §2's repetition),
    by value or pushed; the token it leads to is the API's alone."""
    client, key = keyed_client("jar-client", allowed_audiences=[API])
    pkce = make_pkce()
    refused = push({"client_id": client.client_id, **authenticated(client.client_id, key),
                    "request": request_object(client.client_id, key, {**request_params(client.client_id, pkce),
                                                                     "resource": [API, other_spellings()[1]]})})
    assert_invalid_target(refused)
    signed = request_object(client.client_id, key, {**request_params(client.client_id, pkce), "resource": [API]})
    query = query_of(browser.get(f"{reverse('authorize')}?{urlencode({'client_id': client.client_id, 'request': signed})}")
                     ["Location"])
    token = exchange(HttpClient(), query["code"], pkce, client.client_id, redirect_uri=SERVICE_REDIRECT,
                     **authenticated(client.client_id, key))
    assert token.status_code == 200, token.content
    assert aud_of(token.json()["access_token"]) == [API]
    assert_wrong_audience(userinfo(token.json()["access_token"]))


# --- token exchange -------------------------------------------------------------------------------
@pytest.mark.parametrize("audience", other_spellings()[:6])
def test_an_exchange_for_userinfo_otherwise_spelled_is_refused(browser: HttpClient, mobile_client: RegisteredClient,
                                                               backend: RegisteredClient,  # noqa: F811
                                                               audience: str) -> None:
    """Written behind the rules (raw SQL), such an audience is refused at the exchange: none
    is the userinfo endpoint as discovery publishes it, the one Vigil URL a service may be
    granted."""
    narrowed = tokens_for(browser, [API])["access_token"]
    write_behind_validation(backend.client, token_exchange_audiences=[audience])
    issued = AccessToken.objects.count()
    assert_invalid_target(_exchange(backend, narrowed, audience=audience, scope="openid profile"))
    assert AccessToken.objects.count() == issued


def test_an_exchange_for_the_apps_client_id_is_not_the_apps_token(browser: HttpClient, mobile_client: RegisteredClient,
                                                                   backend: RegisteredClient) -> None:  # noqa: F811
    """Another client's client_id is an allowed exchange audience (a downstream service by
    its id); the token carries the backend's client_id, so /userinfo does not take it as the
    app's."""
    narrowed = tokens_for(browser, [API])["access_token"]
    backend.client.token_exchange_audiences = [MOBILE_CLIENT_ID]
    backend.client.save()
    exchanged = _exchange(backend, narrowed, audience=MOBILE_CLIENT_ID, scope="openid profile")
    assert exchanged.status_code == 200, exchanged.content
    assert aud_of(exchanged.json()["access_token"]) == [MOBILE_CLIENT_ID]
    assert_wrong_audience(userinfo(exchanged.json()["access_token"]))
