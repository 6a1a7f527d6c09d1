"""Issue 17 §5 against a live server (PostgreSQL): the rooted-device scenario of ``make demo``.
A rooted Android device gets reduced access on the client whose policy reduces rooted
devices, and is refused with the same error as before graded trust on a default client,
leaving nothing behind there."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from attestation.models import Device, Platform, RegisteredApp
from core.models import SecurityEvent
from device_health.models import DeviceHealth, HealthOutcome
from sessions.models import DeviceSession
from simulator.mobile_app import FlowError
from simulator.scenarios import rooted_device

pytestmark = [pytest.mark.live, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_rooted_device_scenario_against_a_live_server(issuer: str, settings: Any) -> None:
    settings.ATTESTATION_ALLOW_TEST_ROOTS = True
    call_command("bootstrap_demo", stdout=StringIO())
    said: list[str] = []
    rooted_device.run(issuer, said.append)
    text = "\n".join(said)
    assert text.count("device_health=reduced") == 1 + rooted_device.REFRESHES
    assert "scope 'openid profile', 120 s" in text
    assert "userinfo with the reduced token: HTTP 200" in text
    assert "refuses it: invalid_client_attestation (Device attestation failed: boot_state_unverified.)" in text

    graded = RegisteredApp.objects.get(client__client_id=rooted_device.GRADED_CLIENT_ID, platform=Platform.ANDROID)
    health = DeviceHealth.objects.get(device__app=graded)
    assert health.outcome == HealthOutcome.REDUCE and health.deciding_rule == "rooted-boot"
    assert health.facts["verified_boot_state"]["value"] == "Unverified"
    assert health.facts["bootloader_locked"]["value"] is False
    assert DeviceSession.objects.filter(client=graded.client).count() == 1

    strict = RegisteredApp.objects.get(client__client_id=rooted_device.DEFAULT_CLIENT_ID, platform=Platform.ANDROID)
    assert not Device.objects.filter(app=strict).exists()  # nothing stored for the refused device
    assert not DeviceSession.objects.filter(client=strict.client).exists()
    refusal = SecurityEvent.objects.get(event_type="attestation.enroll", client_id=rooted_device.DEFAULT_CLIENT_ID)
    assert refusal.outcome == "failure" and refusal.reason == "boot_state_unverified"


def test_the_scenario_fails_loudly_when_the_graded_client_is_missing(issuer: str, settings: Any) -> None:
    """Without ``bootstrap_demo`` the scenario does not pretend: it raises."""
    settings.ATTESTATION_ALLOW_TEST_ROOTS = True
    with pytest.raises(FlowError):
        rooted_device.run(issuer, lambda _: None)
