"""RFC 8707 §2.2 at the code exchange: the token request may name (repeating ``resource``) a
subset of the resources granted at authorization; the access token is for exactly those (its
``aud``, in the JWT and in its row), the family's refresh tokens keep them all. Anything else
is ``invalid_target`` (RFC 8707 §2), and the code stays unused. The same rule as the refresh
grant's (``VigilGrantMixin.narrow_resources``), on the one-statement path (PostgreSQL) and the
transactional one.

Attacks: a client widening its token to a resource the user never granted (one the client is
registered for, or any other, or a malformed one), first or on a retry of the exchange."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core import jwt_tokens, keys
from core.models import SecurityEvent
from sessions.models import AccessToken, AuthorizationCode, DeviceSession, RefreshToken, SessionStatus

from .conftest import Pkce, authorize_params, exchange, make_pkce, query_of
from .test_token import refresh

pytestmark = pytest.mark.django_db

API = "https://api.example.com"
ORDERS = "https://orders.example.com"
GRANTED = [API, ORDERS]


@pytest.fixture
def client_id(mobile_client: Any) -> str:
    """The mobile app, registered for two resources (and the signing key made: creating it
    would send the exchange down the transactional path)."""
    keys.ensure_keys()
    mobile_client.client.allowed_audiences = GRANTED
    mobile_client.client.save()
    return str(mobile_client.client.client_id)


def code_for(browser: Any, client_id: str, pkce: Pkce, resources: list[str]) -> str:
    params = [*authorize_params(client_id, pkce).items(), *(("resource", r) for r in resources)]
    response = browser.get(f"{reverse('authorize')}?{urlencode(params)}")
    assert response.status_code == 302, response.content
    return query_of(response["Location"])["code"]


def aud_of(body: dict[str, Any]) -> list[str]:
    """The access token's audience, as its JWT says and as its row says (they must agree)."""
    claims = jwt_tokens.verify(body["access_token"], typ="at+jwt")
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert AccessToken.objects.get(jti=claims["jti"]).audience == aud
    return aud


def state() -> tuple[Any, ...]:
    """Every row a refused exchange must leave alone (events aside)."""
    return (list(AuthorizationCode.objects.order_by("pk").values("pk", "used_at", "exchanged_jkt")),
            list(DeviceSession.objects.order_by("pk").values()), list(RefreshToken.objects.order_by("pk").values()),
            list(AccessToken.objects.order_by("pk").values()))


def events() -> Counter[tuple[str, str, str]]:
    return Counter(SecurityEvent.objects.values_list("event_type", "outcome", "reason"))


@pytest.mark.parametrize("one_statement", [True, False])
@pytest.mark.parametrize("asked", [[API], [ORDERS], [ORDERS, API], [API, API]])
def test_the_access_token_is_for_exactly_the_resources_asked(browser: Any, client_id: str, settings: Any,
                                                             asked: list[str], one_statement: bool) -> None:
    settings.SESSIONS_ROTATE_IN_ONE_STATEMENT = one_statement
    pkce = make_pkce()
    code = code_for(browser, client_id, pkce, GRANTED)
    with CaptureQueriesContext(connection) as captured:
        response = exchange(HttpClient(), code, pkce, client_id, resource=asked)
    assert response.status_code == 200, response.content
    statement = any(q["sql"].startswith("WITH c AS") for q in captured.captured_queries)
    assert statement is (one_statement and connection.vendor == "postgresql")
    assert sorted(aud_of(response.json())) == sorted(set(asked))
    assert DeviceSession.objects.get().resource == GRANTED  # the family keeps the whole grant
    other = [r for r in GRANTED if r not in asked] or [API]
    later = refresh(response.json()["refresh_token"], client_id, resource=other)
    assert later.status_code == 200 and aud_of(later.json()) == other  # RFC 8707 §2.2: another one later


def test_without_resource_the_token_is_for_every_granted_resource(browser: Any, client_id: str) -> None:
    pkce = make_pkce()
    response = exchange(HttpClient(), code_for(browser, client_id, pkce, GRANTED), pkce, client_id)
    assert response.status_code == 200 and aud_of(response.json()) == GRANTED


@pytest.mark.parametrize("one_statement", [True, False])
@pytest.mark.parametrize("asked", [
    ["https://evil.example.com"],  # registered for nobody
    [API, "https://evil.example.com"],  # one good, one not: all refused
    [f"{API}#fragment"],  # RFC 8707 §2: no fragment
    ["api.example.com"], ["/orders"], [""],  # not absolute URIs
    [f"{API}/"],  # compared exactly
])
def test_a_resource_not_granted_is_invalid_target_and_the_code_stays_usable(
        browser: Any, client_id: str, settings: Any, asked: list[str], one_statement: bool) -> None:
    settings.SESSIONS_ROTATE_IN_ONE_STATEMENT = one_statement
    pkce = make_pkce()
    code = code_for(browser, client_id, pkce, GRANTED)
    before, counted = state(), events()
    refused = exchange(HttpClient(), code, pkce, client_id, resource=asked)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"
    assert refused["Cache-Control"] == "no-store" and refused["Content-Type"] == "application/json"
    assert state() == before
    assert events() - counted == Counter({("oauth.error", "failure", "invalid_target"): 1})
    retried = exchange(HttpClient(), code, pkce, client_id, resource=API)
    assert retried.status_code == 200 and aud_of(retried.json()) == [API]


def test_a_resource_the_client_may_ask_for_but_the_user_did_not_grant_is_invalid_target(
        browser: Any, client_id: str) -> None:
    pkce = make_pkce()
    code = code_for(browser, client_id, pkce, [API])
    before = state()
    refused = exchange(HttpClient(), code, pkce, client_id, resource=ORDERS)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"
    assert state() == before


def test_a_code_granted_no_resource_cannot_be_given_one(browser: Any, client_id: str) -> None:
    """As at refresh (test_token.py::test_refresh_without_resource_grant_cannot_add_one)."""
    pkce = make_pkce()
    code = code_for(browser, client_id, pkce, [])
    before = state()
    refused = exchange(HttpClient(), code, pkce, client_id, resource=API)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"
    assert state() == before
    issued = exchange(HttpClient(), code, pkce, client_id)
    assert issued.status_code == 200 and aud_of(issued.json()) == [client_id]


@pytest.fixture
def first(browser: Any, client_id: str) -> dict[str, Any]:
    """A code granted both resources, exchanged for the API only."""
    pkce = make_pkce()
    code = code_for(browser, client_id, pkce, GRANTED)
    response = exchange(HttpClient(), code, pkce, client_id, resource=API)
    assert response.status_code == 200, response.content
    return {"code": code, "pkce": pkce, "client_id": client_id, **response.json()}


def test_a_retry_is_narrowed_by_its_own_request_within_the_grant(first: dict[str, Any]) -> None:
    """A retry of a lost answer, naming another granted resource, gets a token for that one and
    the same refresh token: nothing beyond what that refresh token could get a moment later."""
    again = exchange(HttpClient(), first["code"], first["pkce"], first["client_id"], resource=ORDERS)
    assert again.status_code == 200, again.content
    assert aud_of(again.json()) == [ORDERS] and again.json()["refresh_token"] == first["refresh_token"]
    plain = exchange(HttpClient(), first["code"], first["pkce"], first["client_id"])
    assert plain.status_code == 200 and aud_of(plain.json()) == GRANTED
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE and RefreshToken.objects.count() == 1


def test_a_retry_naming_a_resource_not_granted_is_invalid_target_and_changes_nothing(first: dict[str, Any]) -> None:
    before, counted = state(), events()
    refused = exchange(HttpClient(), first["code"], first["pkce"], first["client_id"],
                       resource=[API, "https://evil.example.com"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"
    assert state() == before
    assert events() - counted == Counter({("oauth.error", "failure", "invalid_target"): 1})
    again = exchange(HttpClient(), first["code"], first["pkce"], first["client_id"], resource=API)
    assert again.status_code == 200 and again.json()["refresh_token"] == first["refresh_token"]


def test_reuse_is_reuse_whatever_resource_it_names(first: dict[str, Any], time_machine: Any) -> None:
    """RFC 6749 §4.1.2: after the window a used code is judged before its resources, so naming a
    resource not granted does not spare the family what its reuse costs."""
    from sessions.flows.grace import grace_seconds

    window = grace_seconds(DeviceSession.objects.get())
    time_machine.move_to(dt.datetime.now(tz=dt.UTC) + dt.timedelta(seconds=window + 5))
    reused = exchange(HttpClient(), first["code"], first["pkce"], first["client_id"],
                      resource="https://evil.example.com")
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert events()[("oauth.code_reuse", "denied", "authorization_code_reuse")] == 1
