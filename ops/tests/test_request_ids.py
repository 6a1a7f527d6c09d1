"""Request ids and JSON log lines (docs/operations.md "Logs"): every response names its
request in X-Request-ID; the security events it records and every log line written while it
runs carry the same id; a client-supplied id is believed only from a trusted proxy."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from core.logging import JsonLineFormatter
from core.models import SecurityEvent
from core.outage_testing import database_down
from idp.tests.conftest import form_post

pytestmark = pytest.mark.django_db
GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def lines() -> Iterator[list[dict[str, Any]]]:
    """The JSON lines written on the security, request and ops loggers, parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    names = ["vigil.security", "vigil.request", "ops.health"]
    for name in names:
        logging.getLogger(name).addHandler(handler)
    parsed: list[dict[str, Any]] = []
    yield parsed
    for name in names:
        logging.getLogger(name).removeHandler(handler)


def _read(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    handler = next(h for h in logging.getLogger("vigil.request").handlers if isinstance(h, logging.StreamHandler)
                   and isinstance(h.formatter, JsonLineFormatter) and isinstance(h.stream, io.StringIO))
    assert isinstance(handler.stream, io.StringIO)
    lines[:] = [json.loads(line) for line in handler.stream.getvalue().splitlines()]  # every line is JSON
    return lines


def test_every_response_names_its_request() -> None:
    first, second = HttpClient().get("/healthz"), HttpClient().get(reverse("jwks"))
    assert GENERATED.fullmatch(first["X-Request-ID"]) and GENERATED.fullmatch(second["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_client_cannot_choose_its_request_id(settings: Any) -> None:
    settings.VIGIL_TRUSTED_PROXIES = []
    response = HttpClient().get("/healthz", HTTP_X_REQUEST_ID="chosen-by-the-client")
    assert GENERATED.fullmatch(response["X-Request-ID"])


def test_a_trusted_proxy_gives_the_id(settings: Any) -> None:
    settings.VIGIL_TRUSTED_PROXIES = ["127.0.0.1"]
    assert HttpClient().get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a.42")["X-Request-ID"] == "lb-7f3a.42"
    for unusable in ("two words", "x" * 65, "new\nline", ""):
        response = HttpClient().get("/healthz", HTTP_X_REQUEST_ID=unusable)
        assert GENERATED.fullmatch(response["X-Request-ID"]), unusable


def test_the_event_and_its_log_lines_carry_the_response_id(
    lines: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = form_post(HttpClient(), reverse("token"), {"grant_type": "refresh_token", "refresh_token": "x",
                                                              "client_id": "no-such-client"})
    assert response.status_code in {400, 401}
    request_id = response["X-Request-ID"]
    event = SecurityEvent.objects.get(event_type="oauth.error")
    assert event.request_id == request_id
    logged = _read(lines)
    security = [line for line in logged if line.get("event") == "oauth.error" and "id" in line]
    assert len(security) == 1 and security[0]["request_id"] == request_id and security[0]["id"] == event.pk
    request_line = next(line for line in logged if line.get("message") == "request")
    assert request_line["request_id"] == request_id
    assert request_line["endpoint"] == "token" and request_line["status"] == response.status_code
    assert request_line["client_id"] == "no-such-client" and request_line["outcome"] == "failure"
    assert request_line["event"] == "oauth.error"


def test_any_log_line_written_during_a_request_names_it(lines: list[dict[str, Any]]) -> None:
    with database_down():
        response = HttpClient().get("/readyz")
    warning = next(line for line in _read(lines) if line.get("logger") == "ops.health")
    assert warning["request_id"] == response["X-Request-ID"] and warning["level"] == "WARNING"


def test_outside_a_request_lines_have_no_id() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %s", ("!",), None)
    line = json.loads(JsonLineFormatter().format(record))
    assert line["message"] == "boom !" and line["logger"] == "x" and "request_id" not in line
