"""Who may read /metrics (docs/operations.md "Metrics"): nobody by default (the same 404 as a
path that does not exist), a bearer token, or an allowed address; a refusal shows nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.test import Client as HttpClient

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture
def http() -> HttpClient:
    return HttpClient()


def test_closed_by_default_exactly_like_a_missing_page(http: HttpClient, settings: Any) -> None:
    settings.VIGIL_METRICS_TOKEN, settings.VIGIL_METRICS_ALLOW = "", []
    response = http.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    missing = http.get("/metricz")
    assert response.status_code == missing.status_code == 404
    assert response.content == missing.content
    assert b"vigil_" not in response.content


def test_bearer_token_opens_it(http: HttpClient, settings: Any) -> None:
    settings.VIGIL_METRICS_TOKEN = TOKEN
    response = http.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert str(response["Content-Type"]).startswith("text/plain; version=")
    text = response.content.decode()
    assert "# TYPE vigil_http_requests_total counter" in text
    assert 'vigil_metrics_collect_ok{part="signing_keys"} 1.0' in text


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}", f"bearer {TOKEN}x",
                                    "Bearer"])
def test_anything_but_the_token_is_refused_with_nothing_in_it(http: HttpClient, settings: Any, header: str | None) -> None:
    settings.VIGIL_METRICS_TOKEN = TOKEN
    response = http.get("/metrics", HTTP_AUTHORIZATION=header) if header is not None else http.get("/metrics")
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden"}
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'


def test_allowed_address(http: HttpClient, settings: Any) -> None:
    settings.VIGIL_METRICS_ALLOW = ["10.0.0.0/8", "127.0.0.1"]
    assert http.get("/metrics").status_code == 200  # the test client's address is 127.0.0.1
    settings.VIGIL_METRICS_ALLOW = ["10.0.0.0/8"]
    assert http.get("/metrics").status_code == 403


def test_allow_list_is_not_fooled_by_a_forwarded_header(http: HttpClient, settings: Any) -> None:
    """Without trusted proxies an X-Forwarded-For is the client's own writing."""
    settings.VIGIL_METRICS_ALLOW = ["10.0.0.7"]
    settings.VIGIL_TRUSTED_PROXIES = []
    assert http.get("/metrics", HTTP_X_FORWARDED_FOR="10.0.0.7").status_code == 403
    settings.VIGIL_TRUSTED_PROXIES = ["127.0.0.1"]  # behind our proxy: the client it names
    assert http.get("/metrics", HTTP_X_FORWARDED_FOR="10.0.0.7").status_code == 200


def test_only_reads(http: HttpClient, settings: Any) -> None:
    settings.VIGIL_METRICS_TOKEN = TOKEN
    assert http.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_system_checks(settings: Any) -> None:
    from ops.checks import metrics_settings

    settings.VIGIL_METRICS_ALLOW = ["10.0.0.0/8", "not-an-address"]
    settings.VIGIL_METRICS_TOKEN = "short"
    found = {message.id for message in metrics_settings()}
    assert found == {"ops.E001", "ops.E002"}
    settings.VIGIL_METRICS_ALLOW, settings.VIGIL_METRICS_TOKEN = ["10.0.0.0/8"], TOKEN
    assert metrics_settings() == []
    assert not [m for m in checks.run_checks(tags=[checks.Tags.security]) if str(m.id).startswith("ops.")]
