"""Issue 17 §3 in the admin: the health policy's rules inline offers the graded facts (software
key, unlicensed app...); what an admin chooses there steers the verifiers at once, and the
save is a ``device_health.policy_changed`` event."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from attestation.grading import refusals_for
from attestation.models import Platform, RegisteredApp
from core.models import SecurityEvent
from device_health.models import HealthPolicy, HealthRule

pytestmark = pytest.mark.django_db


def inline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {"rules-TOTAL_FORMS": str(len(rows)), "rules-INITIAL_FORMS": "0",
                            "rules-MIN_NUM_FORMS": "0", "rules-MAX_NUM_FORMS": "1000"}
    for i, row in enumerate(rows):
        data.update({f"rules-{i}-{k}": v for k, v in {"order": i, "enabled": "on", "platform": "android",
                                                       "parameter": "", "scopes": "", "user_message": "",
                                                       "access_token_lifetime": "", **row}.items()})
    return data


def test_admin_chooses_per_fact_and_the_verifier_follows(admin_client: Any, client_factory: Any) -> None:
    client = client_factory()
    app = RegisteredApp.objects.create(client=client, platform=Platform.ANDROID, android_package_name="com.example")
    assert refusals_for(app).software_key and refusals_for(app).unverified_boot
    page = admin_client.get(reverse("admin:device_health_healthpolicy_add"))
    assert b'value="software_key"' in page.content and b'value="app_unlicensed"' in page.content
    response = admin_client.post(reverse("admin:device_health_healthpolicy_add"), {
        "client": client.pk, "include_default_rules": "on", "reduced_scopes": "openid", "reduced_lifetime": "90",
        "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
        **inline([{"name": "software-key", "condition": "software_key", "outcome": "reduce"},
                  {"name": "rooted", "condition": "boot_not_verified", "outcome": "step_up"},
                  {"name": "weak-integrity", "condition": "integrity_below", "parameter": "strong",
                   "outcome": "reduce"}]),
    })
    assert response.status_code == 302, response.content
    assert HealthRule.objects.filter(policy__client=client).count() == 3
    refusals = refusals_for(app)
    assert not refusals.software_key and not refusals.unverified_boot and refusals.min_integrity is None
    assert refusals.unlocked_bootloader and refusals.unrecognized_app and refusals.unlicensed  # not chosen: as before
    event = SecurityEvent.objects.get(event_type="device_health.policy_changed")
    assert event.details["choices"] == {"software-key": "reduce", "rooted": "step_up", "weak-integrity": "reduce"}
    assert event.details["admin"] == "admin"


def test_admin_refuses_a_level_the_condition_cannot_read(admin_client: Any, client_factory: Any) -> None:
    client = client_factory()
    response = admin_client.post(reverse("admin:device_health_healthpolicy_add"), {
        "client": client.pk, "include_default_rules": "on", "reduced_scopes": "", "reduced_lifetime": "",
        "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
        **inline([{"name": "weak", "condition": "integrity_below", "parameter": "platinum", "outcome": "reduce"}]),
    })
    assert response.status_code == 200 and b"One of: basic, device, strong" in response.content
    assert not HealthPolicy.objects.exists()
    assert not SecurityEvent.objects.filter(event_type="device_health.policy_changed").exists()
