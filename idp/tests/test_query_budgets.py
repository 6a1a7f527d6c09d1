"""Query budgets on the hot paths (mobile fleets refresh every few minutes)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core import keys

from .conftest import exchange, form_post, get_code, make_pkce
from .test_token import basic

pytestmark = pytest.mark.django_db


def statements(captured: CaptureQueriesContext) -> list[str]:
    """What production runs: the test's own transaction turns the grant's into a savepoint."""
    return [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]


def test_refresh_query_budget(tokens, mobile_client):
    """Token lookup, then session touch, rotation, successor, access-token record, event (issue 8)."""
    keys.ensure_keys()
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": mobile_client.client.client_id}
    warm = form_post(HttpClient(), reverse("token"), data)  # this process's config copies now hold the client
    data["refresh_token"] = warm.json()["refresh_token"]
    with CaptureQueriesContext(connection) as captured:
        response = form_post(HttpClient(), reverse("token"), data)
    assert response.status_code == 200
    # PostgreSQL: the lookup and the one-statement rotation (issue 19); SQLite: the transactional path.
    assert len(statements(captured)) <= (2 if connection.vendor == "postgresql" else 6), "\n".join(statements(captured))


def test_code_exchange_query_budget(browser, mobile_client, pkce):
    """Code lookup, claim, session, step-up demand check, two tokens, event."""
    keys.ensure_keys()
    first, _ = get_code(browser, mobile_client.client.client_id, pkce)
    assert exchange(HttpClient(), first, pkce, mobile_client.client.client_id).status_code == 200  # warm copies
    pkce = make_pkce()
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    with CaptureQueriesContext(connection) as captured:
        response = exchange(HttpClient(), code, pkce, mobile_client.client.client_id)
    assert response.status_code == 200, response.content
    # PostgreSQL: the code, the step-up demand check and the one-statement exchange (issue 19).
    assert len(statements(captured)) <= (3 if connection.vendor == "postgresql" else 7), "\n".join(statements(captured))


def test_introspection_query_budget(tokens, service_client, django_assert_num_queries):
    """A JWT access token, the resource server's client copy warm: its look-up and the event
    in one statement on PostgreSQL (issue 19; test_introspection_one_statement.py), two elsewhere."""
    def introspect():
        return form_post(HttpClient(), reverse("introspect"), {"token": tokens["access_token"]},
                         HTTP_AUTHORIZATION=basic(service_client.client.client_id, service_client.secret))

    assert introspect().json()["active"] is True
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 2):
        assert introspect().json()["active"] is True


def test_userinfo_query_budget(tokens):
    """The access token's row with its family, user, client and the family's client: one
    look-up (joined), nothing else on success."""
    def userinfo():
        return HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")

    assert userinfo().status_code == 200
    with CaptureQueriesContext(connection) as captured:
        assert userinfo().status_code == 200
    assert len(statements(captured)) == 1, "\n".join(statements(captured))


def test_jwks_and_discovery_query_budget(django_assert_num_queries):
    """Served from this process's memory once warm (issue 19; idp/tests/test_documents_from_memory.py)."""
    keys.ensure_keys()
    assert HttpClient().get(reverse("jwks")).status_code == 200
    with django_assert_num_queries(0):
        assert HttpClient().get(reverse("jwks")).status_code == 200
        assert HttpClient().get(reverse("openid-configuration")).status_code == 200
