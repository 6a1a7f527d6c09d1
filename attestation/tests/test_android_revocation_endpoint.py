"""The stored revocation status list at the real token endpoint: a list written by another
host (raw SQL + a new config generation) refuses a certificate at this process's next
request, and a list that cannot be read refuses enrollment with 503 temporarily_unavailable
and ``Retry-After`` (RFC 6749 §5.2 body), never a 500, storing nothing."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection

from attestation.models import AndroidRevocationList, Device
from attestation.tests.test_health_token_endpoint import HEADER, HealthApp, android_app, pixel  # noqa: F401
from core import config_cache
from core.models import SecurityEvent
from idp.tests.conftest import browser, mobile_client, user  # noqa: F401
from sessions.models import DeviceSession
from simulator.android import AndroidDevice

pytestmark = [pytest.mark.django_db, pytest.mark.postgres, pytest.mark.redis,
              pytest.mark.usefixtures("allow_test_roots")]
TABLE = AndroidRevocationList._meta.db_table


def _written_by_another_host(entries: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (entries, entry_count, sha256, source, fetched_at, checked_at) "
            "VALUES (%s::jsonb, 0, '', 'another host', now(), now())", [json.dumps(entries)])
    cache.set(config_cache.GENERATION_KEY, os.urandom(8).hex(), timeout=None)


def _refused(response: Any, reason: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_client_attestation" and reason in body["error_description"]


def test_a_revocation_from_another_host_refuses_at_the_next_request(pixel: HealthApp, google: Any) -> None:  # noqa: F811
    assert pixel.login().status_code == 200  # this process's copy is warm
    intermediate = Device.objects.get().verdict["key_attestation"]["chain_serials"][1]
    _written_by_another_host({intermediate: "REVOKED"})
    other = HealthApp(pixel.browser, pixel.client_id, AndroidDevice(google=google))
    _refused(other.login(), "certificate_revoked")
    assert Device.objects.count() == 1 and DeviceSession.objects.count() == 1


@pytest.mark.parametrize("entries", [{"not-hex": "REVOKED"}, ["1"]])
def test_an_unreadable_list_refuses_enrollment_without_a_500(pixel: HealthApp, entries: Any) -> None:  # noqa: F811
    _written_by_another_host(entries)
    response = pixel.login()
    assert response.status_code == 503, response.content
    assert response.json()["error"] == "temporarily_unavailable"
    assert "revocation_list_unavailable" in response.json()["error_description"]
    assert int(response["Retry-After"]) >= 1 and response[HEADER]  # a fresh challenge to retry with
    assert not Device.objects.exists() and not DeviceSession.objects.exists()
    assert SecurityEvent.objects.filter(reason="revocation_list_unavailable").exists()
    AndroidRevocationList.objects.all().delete()  # repaired (the next good download): the same phone enrolls
    config_cache.changed()
    assert pixel.login().status_code == 200
