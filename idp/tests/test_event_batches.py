"""Security events of one token request are written together (core/events.py ``batched``),
without losing one: not on an error, not the refusals, and never one a rollback undid."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from core.events import EventType, Outcome, atomic_with_events, batched, record
from core.models import SecurityEvent

pytestmark = pytest.mark.django_db


def inserts(captured: CaptureQueriesContext) -> int:
    """Statements writing events: an INSERT, or the one-statement rotation (issue 19) with its own."""
    into = 'INSERT INTO "idp_security_event"'
    return sum(q["sql"].startswith(into) or (q["sql"].startswith("WITH") and into in q["sql"])
               for q in captured.captured_queries)


def test_events_of_a_block_are_written_in_one_insert_when_it_ends() -> None:
    with CaptureQueriesContext(connection) as captured:
        with batched():
            record(EventType.ATTESTATION_ASSERT, client_id="app")
            record(EventType.OAUTH_TOKEN_REFRESHED, client_id="app")
            assert SecurityEvent.objects.count() == 0
    assert inserts(captured) == 1
    assert list(SecurityEvent.objects.order_by("pk").values_list("event_type", flat=True)) == [
        "attestation.assert", "oauth.token_refreshed"]


def test_an_error_still_writes_the_batch() -> None:
    with pytest.raises(RuntimeError):
        with batched():
            record(EventType.ATTESTATION_TOKEN_REFUSED, outcome=Outcome.DENIED, reason="bad_signature")
            raise RuntimeError("the request failed after the refusal")
    assert SecurityEvent.objects.get().reason == "bad_signature"


def test_an_event_inside_a_transaction_goes_with_it() -> None:
    with batched():
        try:
            with transaction.atomic():
                record(EventType.OAUTH_TOKEN_REFRESHED, client_id="app")
                assert SecurityEvent.objects.count() == 1  # written with its transaction, at once
                raise ValueError("rolled back")
        except ValueError:
            pass
        with transaction.atomic():
            record(EventType.OAUTH_TOKEN_ISSUED, client_id="app")
    assert list(SecurityEvent.objects.values_list("event_type", flat=True)) == ["oauth.token_issued"]


def test_the_log_line_follows_the_written_row(caplog: Any, django_capture_on_commit_callbacks: Any) -> None:
    with caplog.at_level(logging.INFO, logger="vigil.security"):
        with django_capture_on_commit_callbacks(execute=True):
            with batched():
                record(EventType.OAUTH_TOKEN_REFRESHED, client_id="app")
                assert not [r for r in caplog.records if r.name == "vigil.security"]
    [line] = [r for r in caplog.records if r.name == "vigil.security"]
    assert line.event["id"] == SecurityEvent.objects.get().pk


def test_a_token_request_writes_its_events_in_one_insert(tokens: Any, mobile_client: Any) -> None:
    from django.test import Client as HttpClient
    from django.urls import reverse

    from core import keys

    from .conftest import form_post

    keys.ensure_keys()
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": mobile_client.client.client_id}
    before = SecurityEvent.objects.count()
    with CaptureQueriesContext(connection) as captured:
        assert form_post(HttpClient(), reverse("token"), data).status_code == 200
    assert inserts(captured) == 1
    assert SecurityEvent.objects.filter(pk__gt=0).count() == before + 1
    successor = dict(data, refresh_token=form_post(HttpClient(), reverse("token"), data).json()["refresh_token"])
    assert form_post(HttpClient(), reverse("token"), successor).status_code == 200  # the chain moves on
    reused = form_post(HttpClient(), reverse("token"), data)  # the rotated token again: reuse
    assert reused.json()["error"] == "invalid_grant"
    assert SecurityEvent.objects.filter(event_type="oauth.refresh_refused", reason="reuse").exists()
    assert SecurityEvent.objects.filter(event_type="session.revoked", reason="refresh_token_reuse").exists()


def test_events_of_a_transaction_commit_with_it_together_with_those_held() -> None:
    """``atomic_with_events``: the batch's events so far and the block's own, in one INSERT
    inside the transaction; nothing is left for the batch to write afterwards."""
    with CaptureQueriesContext(connection) as whole:
        with batched():
            record(EventType.ATTESTATION_ASSERT, client_id="app")
            with CaptureQueriesContext(connection) as captured:
                with atomic_with_events() as written:
                    written.record(EventType.OAUTH_TOKEN_REFRESHED, client_id="app")
            assert inserts(captured) == 1
            assert SecurityEvent.objects.count() == 2
    assert inserts(whole) == 1  # the batch had nothing left to write when it ended
    assert list(SecurityEvent.objects.order_by("pk").values_list("event_type", flat=True)) == [
        "attestation.assert", "oauth.token_refreshed"]


def test_a_rolled_back_transaction_leaves_the_held_events_to_the_batch() -> None:
    with batched():
        record(EventType.ATTESTATION_ASSERT, client_id="app")
        with pytest.raises(RuntimeError):
            with atomic_with_events() as written:
                written.record(EventType.OAUTH_TOKEN_REFRESHED, client_id="app")
                raise RuntimeError("the rotation was refused")
        assert SecurityEvent.objects.count() == 0
    assert list(SecurityEvent.objects.values_list("event_type", flat=True)) == ["attestation.assert"]


def test_a_batch_that_cannot_be_written_does_not_fail_the_request(caplog: Any) -> None:
    """The work of the block is done: with the database gone its events reach the log alone."""

    def database_gone(execute: Any, sql: str, *args: Any) -> Any:
        if sql.startswith('INSERT INTO "idp_security_event"'):
            raise OperationalError("injected: server closed the connection unexpectedly")
        return execute(sql, *args)

    with caplog.at_level(logging.INFO, logger="vigil.security"):
        with connection.execute_wrapper(database_gone):
            with batched():
                record(EventType.OAUTH_REFRESH_REFUSED, outcome=Outcome.DENIED, reason="reuse", client_id="app")
    assert SecurityEvent.objects.count() == 0
    [line] = [r for r in caplog.records if r.name == "vigil.security" and r.levelno == logging.INFO]
    assert line.event["reason"] == "reuse" and line.event["id"] is None
    assert any(r.levelno == logging.ERROR for r in caplog.records if r.name == "core.events")
