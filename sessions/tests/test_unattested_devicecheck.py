"""The fallback is no way around Apple DeviceCheck: an iOS app that checks DeviceCheck checks
it for a phone that says it cannot attest too, so a phone flagged for abuse does not come
back by reinstalling the app and claiming ``attestation_type=none`` (issue 17 §2-3)."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from joserfc.jwk import ECKey

from attestation.flows.devicecheck import flag_device
from attestation.models import Device, RegisteredApp
from attestation.testing.devicecheck_standin import DeviceCheckStandIn, device_of
from core.models import SecurityEvent
from device_health.models import DeviceHealth, HealthOutcome
from sessions.models import DeviceSession, RefreshToken
from simulator.ios import IOSDevice

from .test_device_bound_tokens import APP_ID, ios_app  # noqa: F401 - a fixture, used by name
from .test_unattested_devices import Unattested

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]


@pytest.fixture
def checked_app(ios_app: RegisteredApp) -> RegisteredApp:  # noqa: F811 - the fixture above
    ios_app.allow_unattested_devices = True
    ios_app.devicecheck_mode = "required"
    ios_app.save()
    return ios_app


@pytest.fixture
def phone() -> IOSDevice:
    return IOSDevice(APP_ID, environment="production", devicecheck=True)


def old_iphone(browser: Any, client_id: str, phone: IOSDevice, *, token: str | None = None) -> Unattested:
    app = Unattested(browser, client_id, phone, ECKey.generate_key("P-256", private=True))
    sent = phone.devicecheck_token() if token is None else token
    if sent:
        app.claim["devicecheck_token"] = sent
    return app


def nothing_stored() -> bool:
    return not (Device.objects.exists() or DeviceSession.objects.exists() or RefreshToken.objects.exists())


def test_a_flagged_phone_cannot_come_back_through_the_fallback(
    browser: Any, mobile_client: Any, checked_app: RegisteredApp, phone: IOSDevice, devicecheck: DeviceCheckStandIn,
) -> None:
    devicecheck.set_bits(phone.physical_id, bit0=True, month="2026-11")
    response = old_iphone(browser, mobile_client.client.client_id, phone.reinstall()).login()
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert "devicecheck-flagged" in response.json()["error_description"]
    assert not DeviceSession.objects.exists() and not RefreshToken.objects.exists()
    snapshot = DeviceHealth.objects.get()
    assert snapshot.outcome == HealthOutcome.DENY and snapshot.deciding_condition == "devicecheck_flagged"
    assert snapshot.facts["attested"]["value"] is False and snapshot.facts["devicecheck_bit0"]["value"] is True


def test_a_required_token_is_required_of_an_unattested_iphone(
    browser: Any, mobile_client: Any, checked_app: RegisteredApp, phone: IOSDevice, devicecheck: DeviceCheckStandIn,
) -> None:
    response = old_iphone(browser, mobile_client.client.client_id, phone, token="").login()
    assert response.status_code == 400 and response.json()["error"] == "invalid_client_attestation"
    assert response.json()["error_description"].endswith("devicecheck_token_required.")
    assert nothing_stored() and devicecheck.requests == []


def test_an_unreadable_token_is_refused_and_nothing_stored(
    browser: Any, mobile_client: Any, checked_app: RegisteredApp, phone: IOSDevice, devicecheck: DeviceCheckStandIn,
) -> None:
    response = old_iphone(browser, mobile_client.client.client_id, phone, token="bm90LWEtdG9rZW4=").login()
    assert response.status_code == 400 and response.json()["error_description"].endswith("devicecheck_token_invalid.")
    assert nothing_stored()


def test_a_clean_phone_enrolls_reduced_with_its_bits_and_can_be_flagged(
    browser: Any, mobile_client: Any, checked_app: RegisteredApp, phone: IOSDevice, devicecheck: DeviceCheckStandIn,
) -> None:
    response = old_iphone(browser, mobile_client.client.client_id, phone).login()
    assert response.status_code == 200, response.content
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["device_attested"] is False and claims["device_health"] == "reduced"
    device = Device.objects.get()
    assert device.attested is False and device.verdict["devicecheck"]["bit0"] is False
    assert device_of(device.devicecheck_token()) == phone.physical_id  # kept, encrypted, for a later flag
    assert phone.physical_id not in device.devicecheck_token_encrypted
    assert DeviceHealth.objects.get().facts["devicecheck_status"]["value"] == "ok"
    assert SecurityEvent.objects.filter(event_type="attestation.devicecheck", outcome="success").count() == 1
    # The operator's "revoke and flag on Apple" reaches the phone behind the fallback too.
    assert flag_device(device, bit=0, now=device.first_attested_at) is True
    assert devicecheck.state_of(phone.physical_id)["bit0"] is True  # type: ignore[index]


def test_an_app_without_devicecheck_does_not_call_apple(
    browser: Any, mobile_client: Any, ios_app: RegisteredApp, phone: IOSDevice,  # noqa: F811
    devicecheck: DeviceCheckStandIn,
) -> None:
    ios_app.allow_unattested_devices = True
    ios_app.save()
    response = old_iphone(browser, mobile_client.client.client_id, phone).login()
    assert response.status_code == 200
    assert devicecheck.requests == [] and "devicecheck" not in Device.objects.get().verdict
