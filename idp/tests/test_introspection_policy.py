"""Who may introspect what (RFC 7662 §4): the token's own client, or the resource server
registered for an audience of the access token; every other look-up answers
``{"active": false}`` and is a security event."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client as HttpClient

from clients.flows.registration import register_client
from core.models import SecurityEvent

from .conftest import exchange, get_code
from .test_introspection_revocation_userinfo import introspect

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_service(db):
    """A confidential client that serves nothing of the mobile app's."""
    return register_client(name="Other service", public=False, redirect_uris=[], grant_types=["client_credentials"],
                           scopes=["orders.read"], served_resources=["https://other.example.com"])


@pytest.fixture
def api_server(db):
    """The resource server of https://api.example.com only."""
    return register_client(name="API", public=False, redirect_uris=[], grant_types=["client_credentials"],
                           scopes=["orders.read"], served_resources=["https://api.example.com"])


def denied_events():
    return list(SecurityEvent.objects.filter(event_type="oauth.introspection", outcome="denied"))


def test_another_service_cannot_introspect_the_apps_tokens(tokens, other_service, mobile_client, user):
    """On c627ee9 any confidential client saw another client's tokens (active, sub, scope)."""
    for token in (tokens["access_token"], tokens["refresh_token"]):
        response = introspect(other_service, token)
        assert response.status_code == 200 and response.json() == {"active": False}
    events = denied_events()
    assert len(events) == 2
    assert {e.details["token_type"] for e in events} == {"access_token", "refresh_token"}
    assert all(e.client_id == other_service.client.client_id for e in events)
    assert all(e.details["token_client_id"] == mobile_client.client.client_id for e in events)
    assert user.get_user_id() not in str([e.details for e in events])


def test_resource_server_of_the_app_sees_its_access_tokens_but_not_its_refresh_tokens(tokens, service_client):
    assert introspect(service_client, tokens["access_token"]).json()["active"] is True
    assert introspect(service_client, tokens["refresh_token"], token_type_hint="refresh_token").json() == {"active": False}
    assert len(denied_events()) == 1


def test_a_client_introspects_its_own_tokens(service_tokens, service_client, other_service):
    """The service's own code-flow tokens: aud is its client_id, the refresh token is its own."""
    assert introspect(service_client, service_tokens["access_token"]).json()["active"] is True
    assert introspect(service_client, service_tokens["refresh_token"]).json()["active"] is True
    assert introspect(other_service, service_tokens["access_token"]).json() == {"active": False}


def test_resource_server_sees_tokens_for_its_resource_only(browser, mobile_client, pkce, api_server, other_service):
    code, _ = get_code(browser, mobile_client.client.client_id, pkce, resource="https://api.example.com")
    body = exchange(HttpClient(), code, pkce, mobile_client.client.client_id).json()
    seen = introspect(api_server, body["access_token"]).json()
    assert seen["active"] is True and seen["aud"] in ("https://api.example.com", ["https://api.example.com"])
    assert introspect(other_service, body["access_token"]).json() == {"active": False}
    # The API serves the resource, not the app: the app's own tokens stay hidden from it.
    plain_code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    plain = exchange(HttpClient(), plain_code, pkce, mobile_client.client.client_id).json()
    assert introspect(api_server, plain["access_token"]).json() == {"active": False}


def test_denied_introspection_looks_like_an_unknown_token(tokens, other_service):
    """RFC 7662 §2.2: the same answer as for a token that does not exist."""
    refused = introspect(other_service, tokens["access_token"])
    unknown = introspect(other_service, "no-such-token")
    assert refused.json() == unknown.json() == {"active": False}
    assert refused.status_code == unknown.status_code == 200


def test_one_query_per_introspection_of_either_kind(service_tokens, service_client, django_assert_num_queries):
    """The policy costs no query: the token (one look-up, its client joined or, for a refresh
    token, the authenticated client's copy) and the event; the client row is not read. A JWT
    access token on PostgreSQL: the look-up and the event in one statement (issue 19)."""
    access_statements = 1 if connection.vendor == "postgresql" else 2
    for token, budget in ((service_tokens["access_token"], access_statements), (service_tokens["refresh_token"], 2)):
        assert introspect(service_client, token).json()["active"] is True  # warms this process's copies
        with django_assert_num_queries(budget):  # the look-up, the event
            assert introspect(service_client, token).json()["active"] is True
