"""Introspecting a JWT access token in one statement (issue 19, idp/oauth/introspect_jwt.py):
the look-up and its security event are one PostgreSQL statement, and they answer and record
exactly what the general path (a look-up, then ``events.record``) does, in every case: active,
revoked, its family ended, its user or client deactivated, expired (to the microsecond), without a row,
and refused to a client that does not serve its audience."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clients.flows.registration import register_client
from clients.models import Client
from core import request_context
from core.models import SecurityEvent
from idp.oauth import introspect_jwt
from sessions.models import AccessToken, DeviceSession, SessionStatus
from tests.written_elsewhere import elsewhere

from .test_introspection_revocation_userinfo import introspect

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

EVENT_FIELDS = ["event_type", "outcome", "reason", "user_id", "client_id", "session_id", "ip_address", "details"]


@pytest.fixture
def other_service(db: Any) -> Any:
    return register_client(name="Other service", public=False, redirect_uris=[], grant_types=["client_credentials"],
                           scopes=["orders.read"], served_resources=["https://other.example.com"])


def _answer(client: Any, token: str) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The body, the one event recorded, and how many statements it took."""
    before = SecurityEvent.objects.count()
    with CaptureQueriesContext(connection) as captured:
        body = introspect(client, token).json()
    events = list(SecurityEvent.objects.order_by("id").values(*EVENT_FIELDS))[before:]
    assert len(events) == 1, events
    return body, events[0], len(captured.captured_queries)


def _both_paths(client: Any, token: str, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one-statement answer, checked against the general path's for the same token."""
    introspect(client, token)  # warms this process's copies (the client, the public key)
    body, event, statements = _answer(client, token)
    assert statements == 1
    with monkeypatch.context() as patched:
        patched.setattr(introspect_jwt, "applies", lambda *args: None)
        general_body, general_event, general_statements = _answer(client, token)
    assert general_statements == 2
    assert (body, event) == (general_body, general_event)
    return body, event


def _ending(name: str) -> Callable[[Any, Any], None]:
    def revoked(access: AccessToken, moment: Any) -> None:
        AccessToken.objects.filter(pk=access.pk).update(revoked_at=moment)

    def family_ended(access: AccessToken, moment: Any) -> None:
        DeviceSession.objects.filter(access_tokens=access).update(status=SessionStatus.REVOKED)

    def user_deactivated(access: AccessToken, moment: Any) -> None:
        elsewhere(get_user_model()).filter(accesstoken=access).update(is_active=False)

    def client_deactivated(access: AccessToken, moment: Any) -> None:
        elsewhere(Client).filter(accesstoken=access).update(is_active=False)

    def row_gone(access: AccessToken, moment: Any) -> None:
        AccessToken.objects.filter(pk=access.pk).delete()

    return {"revoked": revoked, "family_ended": family_ended, "user_deactivated": user_deactivated,
            "client_deactivated": client_deactivated, "row_gone": row_gone}[name]


def test_an_active_token(tokens: Any, service_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    body, event = _both_paths(service_client, tokens["access_token"], monkeypatch)
    assert body["active"] is True and body["username"] == "alice"
    assert (event["outcome"], event["reason"], event["details"]) == ("success", "active", {})
    assert event["client_id"] == service_client.client.client_id and event["ip_address"] == "127.0.0.1"


@pytest.mark.parametrize("ending", ["revoked", "family_ended", "user_deactivated", "client_deactivated", "row_gone"])
def test_an_ended_token_is_inactive_on_both_paths(
    ending: str, tokens: Any, service_client: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    access = AccessToken.objects.get(client__client_id=tokens["_params"]["client_id"])
    _ending(ending)(access, dt.datetime.now(dt.UTC))
    body, event = _both_paths(service_client, tokens["access_token"], monkeypatch)
    assert body == {"active": False}
    assert (event["outcome"], event["reason"], event["details"]) == ("info", "inactive", {})


@pytest.mark.parametrize(("offset", "active"), [(-1, True), (0, False), (1, False)])
def test_expiry_is_judged_alike_to_the_microsecond(
    offset: int, active: bool, tokens: Any, service_client: Any, monkeypatch: pytest.MonkeyPatch, time_machine: Any,
) -> None:
    access = AccessToken.objects.get(client__client_id=tokens["_params"]["client_id"])
    time_machine.move_to(access.expires_at + dt.timedelta(microseconds=offset), tick=False)
    body, event = _both_paths(service_client, tokens["access_token"], monkeypatch)
    assert body["active"] is active
    assert event["outcome"] == ("success" if active else "info")


def test_a_client_not_serving_the_audience_is_refused_and_nothing_changes(
    tokens: Any, other_service: Any, mobile_client: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    access = AccessToken.objects.get(client__client_id=mobile_client.client.client_id)
    body, event = _both_paths(other_service, tokens["access_token"], monkeypatch)
    assert body == {"active": False}
    assert (event["outcome"], event["reason"]) == ("denied", "not_token_audience")
    assert event["details"] == {"token_client_id": mobile_client.client.client_id, "token_type": "access_token"}
    assert event["client_id"] == other_service.client.client_id
    after = AccessToken.objects.get(pk=access.pk)
    assert (after.revoked_at, after.expires_at) == (None, access.expires_at)


def test_the_event_is_logged_like_every_other(
    tokens: Any, service_client: Any, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any,
) -> None:
    with caplog.at_level(logging.INFO, logger="vigil.security"), django_capture_on_commit_callbacks(execute=True):
        introspect(service_client, tokens["access_token"])
    stored = SecurityEvent.objects.filter(event_type="oauth.introspection").latest("id")
    lines = [r.event for r in caplog.records if r.name == "vigil.security"]  # type: ignore[attr-defined]
    assert {"event": "oauth.introspection", "outcome": "success", "reason": "active", "id": stored.pk,
            "client_id": service_client.client.client_id, "details": {}} .items() <= lines[-1].items()


def test_the_request_names_the_decision_and_the_event_the_request(
    tokens: Any, other_service: Any, service_client: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The request's log line names the outcome the statement computed, not the one assumed
    before it ran; the event row carries the response's ``X-Request-ID``."""
    noted: list[tuple[str, ...]] = []
    real = request_context.note_decision

    def note(*args: str) -> None:
        noted.append(args)
        real(*args)

    monkeypatch.setattr(request_context, "note_decision", note)
    for client, decision in ((other_service, ("denied", "not_token_audience")), (service_client, ("success", "active"))):
        response = introspect(client, tokens["access_token"])
        assert noted[-1][1:3] == decision
        assert SecurityEvent.objects.latest("id").request_id == response["X-Request-ID"]
