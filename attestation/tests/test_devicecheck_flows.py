"""DeviceCheck at the iOS enrollment flow and the revoke-and-flag operator action, against
the stand-in of Apple's API on 127.0.0.1 (``devicecheck`` fixture). Negative tests assert
the reason, the event and that nothing was stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from attestation.apple.devicecheck import DeviceCheckUnavailable
from attestation.binding import RequestBinding, devicecheck_hash
from attestation.errors import AttestationError, Reason
from attestation.flows.challenges import issue_challenge
from attestation.flows.devices import enroll_apple_device
from attestation.flows.registry import revoke_and_flag_device
from attestation.models import Device, DeviceStatus, RegisteredApp
from attestation.tasks import devicecheck_flag_device
from attestation.testing.devicecheck_standin import DeviceCheckStandIn
from core.models import SecurityEvent
from simulator.ios import IOSDevice

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]
DC_EVENT = "attestation.devicecheck"


def dc_events() -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(event_type=DC_EVENT).order_by("pk"))


@pytest.fixture
def dc_app(ios_app: RegisteredApp) -> RegisteredApp:
    ios_app.devicecheck_mode = "optional"
    ios_app.save()
    return ios_app


@pytest.fixture
def phone(ios_device: IOSDevice) -> IOSDevice:
    ios_device.devicecheck = True
    return ios_device


def enroll(app: RegisteredApp, device: IOSDevice, binding_for: Callable[..., RequestBinding],
           token: str | None = None) -> Device:
    token = device.devicecheck_token() if token is None else token
    binding = binding_for(issue_challenge(app.client, "enroll").value, app.client.client_id,
                          devicecheck=devicecheck_hash(token))
    return enroll_apple_device(app, device.attest(binding.client_data_hash()), binding, devicecheck_token=token)


def refused(call: Callable[[], Any]) -> str:
    with pytest.raises(AttestationError) as caught:
        call()
    return caught.value.reason


# --------------------------------------------------------------------- enrollment
def test_off_by_default_sends_nothing_to_apple(ios_app: RegisteredApp, phone: IOSDevice,
                                               binding_for: Any, devicecheck: DeviceCheckStandIn) -> None:
    assert ios_app.devicecheck_mode == "off" and ios_app.devicecheck_on_failure == "fail_closed"
    device = enroll(ios_app, phone, binding_for)
    assert "devicecheck" not in device.verdict and device.devicecheck_token_encrypted == ""
    assert devicecheck.requests == [] and dc_events() == []


def test_optional_without_a_token_enrolls_without_asking(dc_app: RegisteredApp, phone: IOSDevice,
                                                         binding_for: Any, devicecheck: DeviceCheckStandIn) -> None:
    device = enroll(dc_app, phone, binding_for, token="")
    assert "devicecheck" not in device.verdict and devicecheck.requests == []


def test_required_without_a_token_is_refused(dc_app: RegisteredApp, phone: IOSDevice, binding_for: Any,
                                             devicecheck: DeviceCheckStandIn) -> None:
    dc_app.devicecheck_mode = "required"
    dc_app.save()
    assert refused(lambda: enroll(dc_app, phone, binding_for, token="")) == Reason.DEVICECHECK_TOKEN_REQUIRED
    assert Device.objects.count() == 0
    assert dc_events()[-1].reason == "devicecheck_token_required"


def test_bits_never_set_are_stored_and_the_token_kept_encrypted(
    dc_app: RegisteredApp, phone: IOSDevice, binding_for: Any, devicecheck: DeviceCheckStandIn
) -> None:
    token = phone.devicecheck_token()
    device = enroll(dc_app, phone, binding_for, token=token)
    stored = device.verdict["devicecheck"]
    assert (stored["status"], stored["found"], stored["bit0"], stored["bit1"]) == ("ok", False, False, False)
    assert token not in device.devicecheck_token_encrypted and device.devicecheck_token() == token
    event = dc_events()[-1]
    assert (event.outcome, event.reason, event.details["operation"]) == ("success", "", "query")


def test_bits_set_at_apple_reach_the_verdict(dc_app: RegisteredApp, phone: IOSDevice, binding_for: Any,
                                             devicecheck: DeviceCheckStandIn) -> None:
    devicecheck.set_bits(phone.physical_id, bit0=True, month="2026-11")
    stored = enroll(dc_app, phone, binding_for).verdict["devicecheck"]
    assert (stored["bit0"], stored["bit1"], stored["last_update_time"]) == (True, False, "2026-11")


def test_a_forged_token_is_refused_whatever_the_failure_mode(
    dc_app: RegisteredApp, phone: IOSDevice, binding_for: Any, devicecheck: DeviceCheckStandIn
) -> None:
    dc_app.devicecheck_on_failure = "fail_open"
    dc_app.save()
    assert refused(lambda: enroll(dc_app, phone, binding_for, token="Zm9yZ2Vk")) == Reason.DEVICECHECK_TOKEN_INVALID
    assert Device.objects.count() == 0
    assert SecurityEvent.objects.filter(event_type="attestation.enroll", reason="devicecheck_token_invalid").exists()


@pytest.mark.parametrize("how", [503, 500, 401, 429, "garbage", "timeout", "redirect"])
def test_outage_fails_closed_and_stores_nothing(dc_app: RegisteredApp, phone: IOSDevice, binding_for: Any,
                                                devicecheck: DeviceCheckStandIn, how: Any) -> None:
    devicecheck.fail(how, delay=1.5)
    assert refused(lambda: enroll(dc_app, phone, binding_for)) == Reason.DEVICECHECK_UNAVAILABLE
    assert Device.objects.count() == 0
    event = dc_events()[-1]
    assert (event.outcome, event.reason, event.details["degraded"]) == ("denied", "devicecheck_unavailable",
                                                                         "fail_closed")


def test_outage_fails_open_with_the_bits_unknown(dc_app: RegisteredApp, phone: IOSDevice, binding_for: Any,
                                                 devicecheck: DeviceCheckStandIn) -> None:
    dc_app.devicecheck_on_failure = "fail_open"
    dc_app.save()
    devicecheck.set_bits(phone.physical_id, bit0=True)  # flagged, but Apple cannot say so now
    devicecheck.fail(503)
    device = enroll(dc_app, phone, binding_for)
    assert device.verdict["devicecheck"]["status"] == "unavailable"
    assert "bit0" not in device.verdict["devicecheck"]
    event = dc_events()[-1]
    assert (event.outcome, event.reason, event.details["degraded"]) == ("failure", "devicecheck_unavailable",
                                                                        "fail_open")


def test_the_token_is_bound_into_the_attestation(dc_app: RegisteredApp, phone: IOSDevice, binding_for: Any,
                                                 devicecheck: DeviceCheckStandIn) -> None:
    """A token swapped on the network (a clean phone's) no longer matches the attested binding."""
    attested = phone.devicecheck_token()
    binding = binding_for(issue_challenge(dc_app.client, "enroll").value, dc_app.client.client_id,
                          devicecheck=devicecheck_hash(attested))
    attestation = phone.attest(binding.client_data_hash())
    clean = IOSDevice(phone.app_id).devicecheck_token()
    server_side = binding_for(binding.challenge, dc_app.client.client_id, devicecheck=devicecheck_hash(clean))
    assert refused(lambda: enroll_apple_device(dc_app, attestation, server_side, devicecheck_token=clean)) == (
        Reason.NONCE_MISMATCH)
    assert devicecheck.requests == [] and Device.objects.count() == 0


def test_binding_bytes_without_a_token_are_unchanged() -> None:
    plain = RequestBinding("c", "app", "authorization_code", "h")
    assert b"devicecheck" not in plain.client_data()
    with_token = RequestBinding("c", "app", "authorization_code", "h", devicecheck=devicecheck_hash("dG9r"))
    assert with_token.client_data() == (
        b'{"challenge":"c","client_id":"app","devicecheck":"' + devicecheck_hash("dG9r").encode()
        + b'","dpop_jkt":"","grant":"authorization_code","grant_hash":"h","signals":{}}'
    )


# --------------------------------------------------------------------- revoke and flag
@pytest.fixture
def enrolled(dc_app: RegisteredApp, phone: IOSDevice, binding_for: Any, devicecheck: DeviceCheckStandIn) -> Device:
    return enroll(dc_app, phone, binding_for)


def test_revoke_and_flag_sets_the_bit_at_apple(enrolled: Device, phone: IOSDevice, devicecheck: DeviceCheckStandIn,
                                               django_capture_on_commit_callbacks: Any, eager_celery: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert revoke_and_flag_device(enrolled, reason="abuse") is True
    enrolled.refresh_from_db()
    assert enrolled.status == DeviceStatus.REVOKED
    assert enrolled.devicecheck_flag_requested_at is not None and enrolled.devicecheck_flagged_at is not None
    assert devicecheck.state_of(phone.physical_id)["bit0"] is True  # type: ignore[index]
    assert dc_events()[-1].details["operation"] == "update"


def test_flag_task_retries_while_apple_fails_then_flags_once(
    enrolled: Device, phone: IOSDevice, devicecheck: DeviceCheckStandIn, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        revoke_and_flag_device(enrolled, reason="abuse")
    devicecheck.fail(503)
    with pytest.raises(DeviceCheckUnavailable):  # Celery's autoretry_for retries this
        devicecheck_flag_device.run(enrolled.pk)
    enrolled.refresh_from_db()
    assert enrolled.devicecheck_flagged_at is None and devicecheck.state_of(phone.physical_id) is None
    devicecheck.recover()
    assert devicecheck_flag_device.run(enrolled.pk) is True
    sent = len(devicecheck.requests)
    assert devicecheck_flag_device.run(enrolled.pk) is True  # idempotent: Apple is not asked again
    assert len(devicecheck.requests) == sent
    assert devicecheck.state_of(phone.physical_id)["bit0"] is True  # type: ignore[index]


def test_flag_bit_follows_the_setting(enrolled: Device, phone: IOSDevice, devicecheck: DeviceCheckStandIn,
                                      settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    settings.ATTESTATION_DEVICECHECK_ABUSE_BIT = 1
    with django_capture_on_commit_callbacks(execute=False):
        revoke_and_flag_device(enrolled, reason="abuse")
    devicecheck_flag_device.run(enrolled.pk)
    assert devicecheck.state_of(phone.physical_id) == {"bit0": False, "bit1": True,
                                                       "last_update_time": devicecheck.state_of(
                                                           phone.physical_id)["last_update_time"]}  # type: ignore[index]


def test_revoke_and_flag_without_a_token_only_revokes(ios_app: RegisteredApp, ios_device: IOSDevice,
                                                     binding_for: Any, devicecheck: DeviceCheckStandIn,
                                                     django_capture_on_commit_callbacks: Any,
                                                     eager_celery: Any) -> None:
    device = enroll(ios_app, ios_device, binding_for, token="")
    with django_capture_on_commit_callbacks(execute=True):
        assert revoke_and_flag_device(device, reason="abuse") is False
    assert devicecheck.requests == []
    device.refresh_from_db()
    assert device.status == DeviceStatus.REVOKED and device.devicecheck_flag_requested_at is None
    assert (dc_events()[-1].outcome, dc_events()[-1].reason) == ("failure", "devicecheck_token_missing")


def test_task_for_an_unflagged_device_does_nothing(enrolled: Device, devicecheck: DeviceCheckStandIn) -> None:
    sent = len(devicecheck.requests)
    assert devicecheck_flag_device.run(enrolled.pk) is False
    assert len(devicecheck.requests) == sent


def test_outages_are_metered(dc_app: RegisteredApp, phone: IOSDevice, binding_for: Any,
                             devicecheck: DeviceCheckStandIn, django_capture_on_commit_callbacks: Any) -> None:
    from core import metrics

    def count(result: str, degraded: str) -> float:
        return metrics.DEVICECHECK.labels("query", result, degraded)._value.get()

    closed, ok = count("devicecheck_unavailable", "fail_closed"), count("ok", "none")
    devicecheck.fail(503)
    with django_capture_on_commit_callbacks(execute=True):
        refused(lambda: enroll(dc_app, phone, binding_for))
    devicecheck.recover()
    with django_capture_on_commit_callbacks(execute=True):
        enroll(dc_app, phone, binding_for)
    assert count("devicecheck_unavailable", "fail_closed") == closed + 1 and count("ok", "none") == ok + 1


def test_sweep_queues_the_flags_still_pending(enrolled: Device, devicecheck: DeviceCheckStandIn, settings: Any,
                                              django_capture_on_commit_callbacks: Any, eager_celery: Any) -> None:
    import datetime as dt

    from django.utils import timezone

    from attestation.tasks import devicecheck_flag_pending
    from vigil.schedule import beat_schedule

    assert beat_schedule()["flag-pending-devicecheck"]["task"] == "attestation.devicecheck_flag_pending"
    settings.ATTESTATION_DEVICECHECK_FLAG_SWEEP_SECONDS = 0
    assert "flag-pending-devicecheck" not in beat_schedule()
    devicecheck.fail(503)
    with django_capture_on_commit_callbacks(execute=True):
        revoke_and_flag_device(enrolled, reason="abuse")  # the task's eager run fails (a worker would retry)
    assert devicecheck_flag_pending() == 0  # too young: still its own task's to try
    devicecheck.recover()
    Device.objects.filter(pk=enrolled.pk).update(devicecheck_flag_requested_at=timezone.now() - dt.timedelta(hours=1))
    assert devicecheck_flag_pending() == 1
    assert Device.objects.get(pk=enrolled.pk).devicecheck_flagged_at is not None
    assert devicecheck_flag_pending() == 0
    Device.objects.filter(pk=enrolled.pk).update(devicecheck_flagged_at=None,
                                                 devicecheck_flag_requested_at=timezone.now() - dt.timedelta(days=8))
    assert devicecheck_flag_pending() == 0  # given up: stays pending in the admin
