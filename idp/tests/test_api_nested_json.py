"""The DRF endpoints refuse JSON nested past Python's parser limit as a 400 ``invalid_request``
(``core.api_parsers``), never a 500, and nothing is counted or issued: the challenge endpoint
takes it without any credential, the usage API after the client's."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from core.models import SecurityEvent
from risk.models import DailyUsage, RiskPolicy
from sessions.tests.test_usage import basic

pytestmark = pytest.mark.django_db

NESTED = "[" * 5000


def _refused(response: Any) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_request" and "nested too deeply" in body["error_description"]


def test_the_challenge_endpoint_refuses_deeply_nested_json(mobile_client: Any) -> None:
    events = SecurityEvent.objects.count()
    response = HttpClient().post("/attestation/challenge", data=NESTED, content_type="application/json")
    _refused(response)
    assert "OAuth-Client-Attestation-Challenge" not in response
    assert SecurityEvent.objects.count() == events


def test_the_usage_api_refuses_deeply_nested_json(service_client: Any) -> None:
    RiskPolicy.objects.create(client=service_client.client, accepts_usage_reports=True)
    response = HttpClient().post(reverse("risk:usage"), data=NESTED, content_type="application/json",
                                 HTTP_AUTHORIZATION=basic(service_client.client.client_id, service_client.secret))
    _refused(response)
    assert not DailyUsage.objects.exists()


def test_readable_json_still_reaches_the_view(mobile_client: Any) -> None:
    response = HttpClient().post("/attestation/challenge", data='{"client_id": "' + mobile_client.client.client_id + '", "purpose": "enroll"}',
                                 content_type="application/json")
    assert response.status_code == 200, response.content
