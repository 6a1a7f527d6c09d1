"""DeviceCheck through the real token endpoint: a flagged phone refused (or stepped down) by
the device-health policy even after a reinstall, Apple's outage as 503 (fail closed) or an
enrollment with the bits unknown (fail open), and a swapped token refused."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from attestation.binding import RequestBinding, devicecheck_hash, grant_hash
from attestation.models import Device, Platform, RegisteredApp
from attestation.testing.devicecheck_standin import DeviceCheckStandIn
from core import jwt_tokens
from core.models import SecurityEvent
from device_health.models import DeviceHealth, HealthCondition, HealthOutcome, HealthPolicy, HealthRule
from idp.tests.conftest import browser, form_post, get_code, make_pkce, mobile_client, user  # noqa: F401
from sessions.models import DeviceSession
from simulator.ios import IOSDevice

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]

APP_ID = "ABCDE12345.com.example.vigil"
HEADER = "OAuth-Client-Attestation-Challenge"


@pytest.fixture
def ios_app(mobile_client: Any) -> RegisteredApp:
    team, bundle = APP_ID.split(".", 1)
    return RegisteredApp.objects.create(client=mobile_client.client, platform=Platform.IOS, ios_team_id=team,
                                        ios_bundle_id=bundle, ios_environment="production",
                                        devicecheck_mode="required")


@pytest.fixture
def phone() -> IOSDevice:
    return IOSDevice(APP_ID, environment="production", devicecheck=True)


def challenge(client_id: str) -> str:
    response = form_post(HttpClient(), reverse("attestation:challenge"), {"client_id": client_id, "purpose": "enroll"})
    return str(response.json()["attestation_challenge"])


def login(browser: Any, client_id: str, phone: IOSDevice, *, code: str | None = None, pkce: Any = None,
          sent_token: str | None = None) -> tuple[Any, str, Any]:
    """Sign in and enroll; returns the response, the code and its PKCE (to retry with)."""
    pkce = pkce or make_pkce()
    code = code or get_code(browser, client_id, pkce)[0]
    token = phone.devicecheck_token()
    binding = RequestBinding(challenge(client_id), client_id, "authorization_code", grant_hash(code),
                             devicecheck=devicecheck_hash(token))
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "com.example.app:/oauth2redirect",
            "client_id": client_id, "code_verifier": pkce.verifier, **phone.enrollment_params(binding),
            "devicecheck_token": token if sent_token is None else sent_token}
    return form_post(HttpClient(), reverse("token"), data), code, pkce


def test_clean_phone_enrolls_with_the_bits_as_facts(browser: Any, mobile_client: Any, ios_app: RegisteredApp,
                                                    phone: IOSDevice, devicecheck: DeviceCheckStandIn) -> None:
    response, _, _ = login(browser, mobile_client.client.client_id, phone)
    assert response.status_code == 200, response.content
    facts = DeviceHealth.objects.get().facts
    assert facts["devicecheck_bit0"] == {"value": False, "source": "apple_devicecheck", "trust": "apple_service"}
    assert facts["devicecheck_status"]["value"] == "ok"


def test_flagged_phone_is_refused_even_after_reinstall(browser: Any, mobile_client: Any, ios_app: RegisteredApp,
                                                       phone: IOSDevice, devicecheck: DeviceCheckStandIn) -> None:
    devicecheck.set_bits(phone.physical_id, bit0=True, month="2026-11")
    reinstalled = phone.reinstall()
    assert reinstalled.key_id != phone.key_id
    response, _, _ = login(browser, mobile_client.client.client_id, reinstalled)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert "devicecheck-flagged" in response.json()["error_description"]
    assert DeviceSession.objects.count() == 0
    snapshot = DeviceHealth.objects.get()
    assert snapshot.outcome == HealthOutcome.DENY and snapshot.deciding_condition == "devicecheck_flagged"
    event = SecurityEvent.objects.get(event_type="device.compliance_changed")
    assert event.details["facts"]["devicecheck_bit0"]["value"] is True


def test_client_policy_may_reduce_instead(browser: Any, mobile_client: Any, ios_app: RegisteredApp,
                                          phone: IOSDevice, devicecheck: DeviceCheckStandIn) -> None:
    policy = HealthPolicy.objects.create(client=mobile_client.client)
    HealthRule.objects.create(policy=policy, name="devicecheck-flagged", condition=HealthCondition.DEVICECHECK_FLAGGED,
                              parameter="any", outcome=HealthOutcome.REDUCE, scopes="openid")
    devicecheck.set_bits(phone.physical_id, bit1=True)
    response, _, _ = login(browser, mobile_client.client.client_id, phone)
    assert response.status_code == 200, response.content
    claims = jwt_tokens.verify(response.json()["access_token"], typ="at+jwt")
    assert claims["scope"] == "openid" and claims["device_health"] == "reduced"


def test_outage_fails_closed_with_503_and_the_code_survives(
    browser: Any, mobile_client: Any, ios_app: RegisteredApp, phone: IOSDevice, devicecheck: DeviceCheckStandIn
) -> None:
    client_id = mobile_client.client.client_id
    devicecheck.fail(503)
    response, code, pkce = login(browser, client_id, phone)
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert "devicecheck_unavailable" in response.json()["error_description"]
    assert response["Retry-After"] == "30" and response[HEADER]
    assert Device.objects.count() == 0 and DeviceSession.objects.count() == 0 and not DeviceHealth.objects.exists()
    refusal = SecurityEvent.objects.get(event_type="attestation.token_refused")
    assert refusal.reason == "devicecheck_unavailable"
    devicecheck.recover()  # Apple is back: the same code enrolls (nothing was half-written)
    again, _, _ = login(browser, client_id, phone, code=code, pkce=pkce)
    assert again.status_code == 200, again.content


def test_outage_fails_open_with_the_bits_unknown(browser: Any, mobile_client: Any, ios_app: RegisteredApp,
                                                 phone: IOSDevice, devicecheck: DeviceCheckStandIn) -> None:
    ios_app.devicecheck_on_failure = "fail_open"
    ios_app.save()
    devicecheck.set_bits(phone.physical_id, bit0=True)
    devicecheck.fail("timeout", delay=1.5)
    response, _, _ = login(browser, mobile_client.client.client_id, phone)
    assert response.status_code == 200, response.content
    facts = DeviceHealth.objects.get().facts
    assert facts["devicecheck_status"]["value"] == "unavailable" and "devicecheck_bit0" not in facts
    event = SecurityEvent.objects.get(event_type="attestation.devicecheck")
    assert event.details["degraded"] == "fail_open"


def test_swapped_token_is_refused(browser: Any, mobile_client: Any, ios_app: RegisteredApp, phone: IOSDevice,
                                  devicecheck: DeviceCheckStandIn) -> None:
    devicecheck.set_bits(phone.physical_id, bit0=True)
    clean = IOSDevice(APP_ID).devicecheck_token()  # a man in the middle swaps in a clean phone's token
    response, _, _ = login(browser, mobile_client.client.client_id, phone, sent_token=clean)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client_attestation",
                               "error_description": "Device attestation failed: nonce_mismatch."}
    assert Device.objects.count() == 0 and devicecheck.requests == []


def test_required_token_missing(browser: Any, mobile_client: Any, ios_app: RegisteredApp, phone: IOSDevice,
                                devicecheck: DeviceCheckStandIn) -> None:
    pkce = make_pkce()
    client_id = mobile_client.client.client_id
    code = get_code(browser, client_id, pkce)[0]
    binding = RequestBinding(challenge(client_id), client_id, "authorization_code", grant_hash(code))
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "com.example.app:/oauth2redirect",
            "client_id": client_id, "code_verifier": pkce.verifier, **phone.enrollment_params(binding)}
    response = form_post(HttpClient(), reverse("token"), data)
    assert response.status_code == 400
    assert response.json()["error_description"] == "Device attestation failed: devicecheck_token_required."
    assert Device.objects.count() == 0


@pytest.mark.parametrize("garbage", ["not base64 !", "é" * 10, "A" * 40000, "QUJD", "Zm9v\nYmFy"])
def test_garbage_tokens_bound_by_the_app_are_refused_cleanly(
    browser: Any, mobile_client: Any, ios_app: RegisteredApp, devicecheck: DeviceCheckStandIn, garbage: str
) -> None:
    """A genuine app attesting a broken token: a 400 with a stable reason, never a 500, nothing stored."""
    pkce = make_pkce()
    client_id = mobile_client.client.client_id
    code = get_code(browser, client_id, pkce)[0]
    phone = IOSDevice(APP_ID)
    binding = RequestBinding(challenge(client_id), client_id, "authorization_code", grant_hash(code),
                             devicecheck=devicecheck_hash(garbage))
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "com.example.app:/oauth2redirect",
            "client_id": client_id, "code_verifier": pkce.verifier, **phone.enrollment_params(binding),
            "devicecheck_token": garbage}
    response = form_post(HttpClient(), reverse("token"), data)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client_attestation",
                               "error_description": "Device attestation failed: devicecheck_token_invalid."}
    assert Device.objects.count() == 0 and DeviceSession.objects.count() == 0
