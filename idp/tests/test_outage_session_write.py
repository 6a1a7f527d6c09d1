"""A database outage while a browser's session is written is a 503, like any other outage
(docs/operations.md "Outages"; ``core.session_store``), not Django's 400 "the session was
deleted" (a traceback page with DEBUG on); a session really deleted meanwhile keeps that 400."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client as HttpClient
from django.urls import reverse

from core import outage
from core.outage_testing import database_down, lost_connection_error
from core.session_store import SessionStore

from .conftest import PASSWORD, authorize_params
from .jar_support import authorize_url, push

pytestmark = pytest.mark.django_db


def _session_update(sql: str) -> bool:
    return sql.lstrip().upper().startswith("UPDATE") and "django_session" in sql


def _session_data(agent: HttpClient) -> str:
    return Session.objects.get(pk=agent.session.session_key).session_data


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_a_session_write_refused_by_a_database_outage_is_a_503(user, mobile_client, pkce, settings, debug):
    settings.DEBUG = debug
    agent = HttpClient(raise_request_exception=False)
    assert agent.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD}).status_code == 302
    before = _session_data(agent)
    request_uri = push(authorize_params(mobile_client.client.client_id, pkce)).json()["request_uri"]
    with database_down(_session_update) as refused:  # the pushed request's hold is written to the session
        response = agent.get(authorize_url(mobile_client.client.client_id, request_uri=request_uri))
    assert refused and response.status_code == 503, response.status_code
    assert response["Retry-After"] and "Traceback" not in response.content.decode()
    assert _session_data(agent) == before


def test_a_session_deleted_meanwhile_is_still_djangos_update_error():
    store = SessionStore()
    store["first"] = 1
    store.create()
    Session.objects.filter(pk=store.session_key).delete()
    store["second"] = 2
    with pytest.raises(UpdateError):
        store.save()


def _driver() -> Any:
    return getattr(connection, "Database")  # noqa: B009  # each backend's DB-API module; not in the stubs


@pytest.mark.parametrize(("error", "outage_of"), [
    (lost_connection_error, outage.Dependency.DATABASE),
    (lambda: _driver().DataError("value too long"), None),
])
def test_only_an_outage_passes_through_the_session_store(error: Any, outage_of: Any):
    """The outage is the backend's own: psycopg's lost connection, SQLite's "database is locked"
    (``core.outage`` reads SQLite's errors by their words: PostgreSQL's "server closed the
    connection" raised by sqlite3 is no SQLite outage, and was this test's mistake there)."""
    store = SessionStore()
    store["first"] = 1
    store.create()
    store["second"] = 2
    with database_down(_session_update, error=error), pytest.raises(Exception) as raised:
        store.save()
    assert outage.dependency_of(raised.value) is outage_of
    assert isinstance(raised.value, UpdateError) is (outage_of is None)
    assert SessionStore(store.session_key).load() == {"first": 1}
