"""Issue 7: the periodic revalidation (no request, nobody acting) and the App Attest receipt
refresh against a local stand-in of Apple's receipt service on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests
from django.utils import timezone

from attestation.models import Device
from core.models import SecurityEvent
from device_health import tasks
from device_health.models import DeviceHealth, HealthOutcome, HealthPolicy, HealthRule
from device_health.receipts import ReceiptClient, ReceiptError, parse_receipt
from device_health.testing import AppleReceiptStandIn, devicecheck_key_pem, make_receipt
from sessions.models import DeviceSession, SessionStatus
from vigil.schedule import beat_schedule

from .test_health_token_endpoint import (  # noqa: F401
    APP_ID,
    HealthApp,
    access_claims,
    android_app,
    browser,
    ios_app,
    iphone,
    mobile_client,
    pixel,
    user,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]
TEAM = APP_ID.split(".")[0]


def test_patch_level_ageing_restricts_without_a_request(pixel: HealthApp, time_machine: Any) -> None:
    pixel.leaf = {"os_patch_level": 202511}
    time_machine.move_to(dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC), tick=False)
    assert set(access_claims(pixel.login())["scope"].split()) >= {"email"}
    assert DeviceHealth.objects.get().outcome == HealthOutcome.ALLOW
    time_machine.move_to(dt.datetime(2027, 12, 2, 12, tzinfo=dt.UTC), tick=False)
    assert tasks.revalidate_devices() == {"reduce": 1}
    snapshot = DeviceHealth.objects.get()
    assert snapshot.outcome == HealthOutcome.REDUCE and snapshot.deciding_rule == "outdated-patch"
    event = SecurityEvent.objects.get(event_type="device.compliance_changed")
    assert event.details["trigger"] == "revalidation" and event.details["facts"]["os_patch_level"]["value"] == "2025-11"
    assert tasks.revalidate_devices() == {"reduce": 1}  # idempotent: no second event
    assert SecurityEvent.objects.filter(event_type="device.compliance_changed").count() == 1


def test_policy_change_to_deny_revokes_the_devices_sessions(iphone: HealthApp, mobile_client: Any) -> None:
    assert iphone.login({"os_version": "18.1", "debugger_attached": True}).status_code == 200
    policy = HealthPolicy.objects.create(client=mobile_client.client)
    HealthRule.objects.create(policy=policy, name="no-debugger", condition="debugger_attached", outcome="deny")
    tasks.revalidate_devices()
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert iphone.refresh({"os_version": "18.1"}).json()["error"] == "invalid_grant"


def test_new_step_up_marks_live_sessions(iphone: HealthApp, mobile_client: Any) -> None:
    assert iphone.login({"os_version": "18.1", "debugger_attached": True}).status_code == 200
    policy = HealthPolicy.objects.create(client=mobile_client.client)
    HealthRule.objects.create(policy=policy, name="debugger-step-up", condition="debugger_attached", outcome="step_up")
    tasks.revalidate_devices()
    assert DeviceSession.objects.get().status == SessionStatus.STEP_UP_REQUIRED
    response = iphone.refresh({"os_version": "18.1"})
    assert response.json()["error"] == "invalid_grant" and "Step-up" in response.json()["error_description"]


# ------------------------------------------------------------------ receipts

@pytest.fixture
def apple(settings: Any) -> Any:
    pem = devicecheck_key_pem()
    settings.ATTESTATION_APPLE_RECEIPT_SIGNING_KEY = pem
    settings.ATTESTATION_APPLE_RECEIPT_KEY_ID = "TESTKEY123"
    with AppleReceiptStandIn(team_id=TEAM, key_pem=pem) as stand_in:
        settings.ATTESTATION_APPLE_RECEIPT_BASE_URL = stand_in.url
        yield stand_in


def test_receipt_client_against_the_stand_in(apple: AppleReceiptStandIn, settings: Any) -> None:
    apple.record(b"attest-receipt", make_receipt(APP_ID, risk_metric=3))
    client = ReceiptClient(team_id=TEAM)
    fresh = client.refresh(b"attest-receipt", now=timezone.now())
    assert fresh is not None and fresh.risk_metric == 3 and fresh.receipt_type == "RECEIPT" and fresh.app_id == APP_ID
    assert apple.requests[-1]["path"] == "/v1/attestationData"
    apple.not_modified.add(b"recent")
    assert client.refresh(b"recent", now=timezone.now()) is None
    with pytest.raises(ReceiptError):
        client.refresh(b"unknown", now=timezone.now())
    with pytest.raises(ReceiptError):  # a JWT by another key is refused by the service
        ReceiptClient(team_id=TEAM, signing_key_pem=devicecheck_key_pem()).refresh(b"attest-receipt", now=timezone.now())


def test_development_apps_use_the_development_service(settings: Any) -> None:
    settings.ATTESTATION_APPLE_RECEIPT_DEVELOPMENT_BASE_URL = "http://127.0.0.1:1/dev"
    assert ReceiptClient(team_id=TEAM, environment="development").base_url == "http://127.0.0.1:1/dev"


def test_receipt_parser_refuses_garbage() -> None:
    for garbage in (b"", b"\x30\x03\x02\x01\x01", b"not a receipt" * 10):
        with pytest.raises(ReceiptError):
            parse_receipt(garbage)
    attest = parse_receipt(make_receipt(APP_ID, receipt_type="ATTEST", risk_metric=None))
    assert attest.receipt_type == "ATTEST" and attest.risk_metric is None


@pytest.mark.usefixtures("eager_celery")
def test_high_receipt_risk_metric_fires_a_client_rule(iphone: HealthApp, apple: AppleReceiptStandIn,
                                                      mobile_client: Any) -> None:
    policy = HealthPolicy.objects.create(client=mobile_client.client)
    HealthRule.objects.create(policy=policy, name="device-farm", condition="receipt_risk_above", parameter="5",
                              outcome="step_up", user_message="Sign in again.")
    assert iphone.login({"os_version": "18.1"}).status_code == 200
    device = Device.objects.get()
    apple.record(bytes(device.receipt), make_receipt(APP_ID, risk_metric=42))
    assert tasks.refresh_apple_receipts() == 1  # queued (run eagerly here)
    snapshot = DeviceHealth.objects.get()
    assert snapshot.receipt_risk_metric == 42 and snapshot.outcome == HealthOutcome.STEP_UP
    assert snapshot.facts["receipt_risk_metric"] == {"value": 42, "source": "app_attest_receipt", "trust": "apple_service"}
    assert bytes(Device.objects.get().receipt) != bytes(device.receipt)  # the new receipt is kept for next time
    assert tasks.refresh_apple_receipts() == 0  # refreshed today
    response = iphone.refresh({"os_version": "18.1"})
    assert response.json()["error"] == "invalid_grant" and "Step-up" in response.json()["error_description"]
    assert DeviceSession.objects.get().status == SessionStatus.STEP_UP_REQUIRED


def test_receipt_service_down_raises_for_retry(iphone: HealthApp, settings: Any) -> None:
    settings.ATTESTATION_APPLE_RECEIPT_SIGNING_KEY = devicecheck_key_pem()
    settings.ATTESTATION_APPLE_RECEIPT_KEY_ID = "K"
    settings.ATTESTATION_APPLE_RECEIPT_TIMEOUT = 1
    assert iphone.login({"os_version": "18.1"}).status_code == 200
    with pytest.raises(requests.ConnectionError):
        tasks.refresh_apple_receipt.run(Device.objects.get().pk, base_url="http://127.0.0.1:9")


def test_tasks_are_autodiscovered_and_in_beat() -> None:
    from vigil.celery import app

    app.loader.import_default_modules()
    assert {"device_health.reevaluate_devices", "device_health.refresh_apple_receipts",
            "device_health.refresh_apple_receipt"} <= set(app.tasks)
    entries = beat_schedule()
    assert entries["revalidate-device-health"]["task"] == "device_health.reevaluate_devices"
    assert entries["refresh-apple-receipts"]["task"] == "device_health.refresh_apple_receipts"


# ------------------------------------------------------------------ receipt signatures

def test_receipt_signature_and_path_verify_against_the_configured_root(
    apple: AppleReceiptStandIn, settings: Any, tmp_path: Any,
) -> None:
    from device_health.testing import receipt_root_pem

    root = tmp_path / "receipt-root.pem"
    root.write_bytes(receipt_root_pem())
    settings.ATTESTATION_APPLE_RECEIPT_ROOT_CERTS = str(root)
    good = make_receipt(APP_ID, risk_metric=2)
    apple.record(b"good", good)
    apple.record(b"tampered", good.replace(b"RECEIPT", b"RECEIPX"))
    client = ReceiptClient(team_id=TEAM)
    fresh = client.refresh(b"good", now=timezone.now())
    assert fresh is not None and fresh.risk_metric == 2
    with pytest.raises(ReceiptError, match="message digest"):
        client.refresh(b"tampered", now=timezone.now())


def test_receipt_from_another_root_is_refused(apple: AppleReceiptStandIn, settings: Any, tmp_path: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    from attestation.testing import apple_pki

    other = tmp_path / "other-root.pem"
    other.write_bytes(apple_pki.test_root().cert.public_bytes(serialization.Encoding.PEM))
    settings.ATTESTATION_APPLE_RECEIPT_ROOT_CERTS = [str(other)]
    apple.record(b"good", make_receipt(APP_ID))
    with pytest.raises(ReceiptError, match="certificate path: chain_untrusted"):
        ReceiptClient(team_id=TEAM).refresh(b"good", now=timezone.now())


def test_receipt_signature_checker_refuses_garbage() -> None:
    from device_health.receipt_signature import ReceiptSignatureError, verify_receipt_signature

    for garbage in (b"", b"\x30\x00", make_receipt(APP_ID)[:-40]):
        with pytest.raises(ReceiptSignatureError):
            verify_receipt_signature(garbage, [], timezone.now())
