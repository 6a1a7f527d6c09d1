"""The DeviceCheck flag task in a real Celery worker (solo pool, Redis broker): Apple's
stand-in fails at first, the worker retries with backoff, and the bit ends up set once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from attestation.binding import RequestBinding, devicecheck_hash, grant_hash
from attestation.flows.challenges import issue_challenge
from attestation.flows.devices import enroll_apple_device
from attestation.flows.registry import revoke_device
from attestation.models import Device, Platform, RegisteredApp
from attestation.testing.devicecheck_standin import DeviceCheckStandIn
from simulator.ios import IOSDevice

pytestmark = [pytest.mark.celery, pytest.mark.postgres, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("allow_test_roots")]


def test_worker_retries_until_apple_answers(devicecheck: DeviceCheckStandIn, settings: Any, monkeypatch: Any) -> None:
    from django.utils import timezone

    from clients.flows.registration import register_client
    from tests.celery_support import celery_worker

    for name in ("BASE_URL", "DEVELOPMENT_BASE_URL", "SIGNING_KEY", "KEY_ID"):
        monkeypatch.setenv(f"ATTESTATION_DEVICECHECK_{name}", str(getattr(settings, f"ATTESTATION_DEVICECHECK_{name}")))
    oauth = register_client(name="DC worker app", public=True, client_id="dc-worker-app",
                            redirect_uris=["com.example.vigil:/cb"]).client
    app = RegisteredApp.objects.create(client=oauth, platform=Platform.IOS, ios_team_id="ABCDE12345",
                                       ios_bundle_id="com.example.vigil", devicecheck_mode="required")
    phone = IOSDevice(app.app_id, devicecheck=True)
    token = phone.devicecheck_token()
    binding = RequestBinding(issue_challenge(oauth, "enroll").value, oauth.client_id, "authorization_code",
                             grant_hash("c"), devicecheck=devicecheck_hash(token))
    device = enroll_apple_device(app, phone.attest(binding.client_data_hash()), binding, devicecheck_token=token)
    revoke_device(device, reason="abuse")
    Device.objects.filter(pk=device.pk).update(devicecheck_flag_requested_at=timezone.now())
    devicecheck.fail(503)
    with celery_worker("vigil-devicecheck-test") as sender:
        sender.send_task("attestation.devicecheck_flag_device", args=[device.pk], queue="vigil-devicecheck-test")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(r["path"] == "/v1/update_two_bits" for r in devicecheck.requests):
            time.sleep(0.2)
        devicecheck.recover()  # Apple is back: the next retry sets the bit
        while time.monotonic() < deadline and Device.objects.get(pk=device.pk).devicecheck_flagged_at is None:
            time.sleep(0.3)
    assert Device.objects.get(pk=device.pk).devicecheck_flagged_at is not None
    assert devicecheck.state_of(phone.physical_id)["bit0"] is True  # type: ignore[index]
    updates = [r for r in devicecheck.requests if r["path"] == "/v1/update_two_bits"]
    assert len(updates) >= 2  # at least one failed attempt, then the one that set the bit
