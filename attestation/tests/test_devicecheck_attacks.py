"""An attacker's (and an operator's in an Apple outage) review of Apple DeviceCheck
(docs/attestation.md "DeviceCheck"): the flag task and its sweep retried, raced and stale;
tokens swapped, replayed, huge or malformed; the fail-closed 503 keeping the code usable.
Each negative test asserts the refusal and that nothing changed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from attestation.flows.devicecheck import encrypt_token
from attestation.flows.registry import revoke_and_flag_device
from attestation.models import Device
from attestation.tasks import devicecheck_flag_device, devicecheck_flag_pending
from attestation.testing.devicecheck_standin import DeviceCheckStandIn
from core.models import SecurityEvent
from simulator.ios import IOSDevice

from .test_devicecheck_flows import dc_app, enroll, enrolled, phone  # noqa: F401 - fixtures, used by name

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]
NOT_A_TOKEN = "bm90LWEtdG9rZW4="  # base64, but no device's: Apple answers 400 about the device token


def pending_an_hour(device: Device) -> None:
    Device.objects.filter(pk=device.pk).update(devicecheck_flag_requested_at=timezone.now() - dt.timedelta(hours=1))


# --- the flag task and its sweep -------------------------------------------------------------------
def test_a_stale_token_is_tried_once_not_by_every_sweep(enrolled: Device, devicecheck: DeviceCheckStandIn,
                                                        django_capture_on_commit_callbacks: Any) -> None:
    """Apple refusing the stored token is final: the sweep must not send it again for 7 days."""
    with django_capture_on_commit_callbacks(execute=False):
        revoke_and_flag_device(enrolled, reason="abuse")
    Device.objects.filter(pk=enrolled.pk).update(devicecheck_token_encrypted=encrypt_token(NOT_A_TOKEN))
    sent = len(devicecheck.requests)
    assert devicecheck_flag_device.run(enrolled.pk) is False
    assert len(devicecheck.requests) == sent + 1
    enrolled.refresh_from_db()
    assert enrolled.devicecheck_flagged_at is None and enrolled.devicecheck_flag_requested_at is not None
    assert enrolled.devicecheck_token_encrypted == ""
    refused = SecurityEvent.objects.filter(event_type="attestation.devicecheck", reason="devicecheck_token_invalid")
    assert refused.count() == 1
    pending_an_hour(enrolled)
    assert devicecheck_flag_pending() == 0
    assert devicecheck_flag_device.run(enrolled.pk) is False  # a retry of the task: no call either
    assert len(devicecheck.requests) == sent + 1


def test_the_sweep_does_not_flag_a_flagged_device_again(enrolled: Device, phone: IOSDevice,  # noqa: F811
                                                        devicecheck: DeviceCheckStandIn,
                                                        django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        revoke_and_flag_device(enrolled, reason="abuse")
    assert devicecheck_flag_device.run(enrolled.pk) is True
    pending_an_hour(enrolled)
    sent = len(devicecheck.requests)
    assert devicecheck_flag_pending() == 0 and len(devicecheck.requests) == sent
    # The task delivered twice (a retry after a lost acknowledgement): Apple is not asked again.
    assert devicecheck_flag_device.run(enrolled.pk) is True and len(devicecheck.requests) == sent


def test_a_reinstall_meanwhile_is_flagged_through_the_old_token(enrolled: Device, phone: IOSDevice,  # noqa: F811
                                                               dc_app: Any, binding_for: Any,  # noqa: F811
                                                               devicecheck: DeviceCheckStandIn,
                                                               django_capture_on_commit_callbacks: Any) -> None:
    """Revoked, then the app reinstalled (a new key, a new row) before the task ran: the old
    row's token still names the phone, and the new enrollment's next one meets the bit."""
    with django_capture_on_commit_callbacks(execute=False):
        revoke_and_flag_device(enrolled, reason="abuse")
    again = enroll(dc_app, phone.reinstall(), binding_for)
    assert again.pk != enrolled.pk and again.verdict["devicecheck"]["bit0"] is False  # not flagged yet
    assert devicecheck_flag_device.run(enrolled.pk) is True
    third = enroll(dc_app, phone.reinstall(), binding_for)
    assert third.verdict["devicecheck"]["bit0"] is True


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_flag_tasks_racing_flag_once(enrolled: Device, phone: IOSDevice,  # noqa: F811
                                     devicecheck: DeviceCheckStandIn) -> None:
    """The task and a sweep's copy of it (or a redelivery) at the same moment: both answer
    flagged, the bit is set, one confirmation is stored, Apple got at most one update each."""
    from django.db import connection

    from tests.concurrency import run_concurrently

    # As revoke_and_flag_device leaves it, without queuing (autocommit would run on_commit now).
    Device.objects.filter(pk=enrolled.pk).update(status="revoked", devicecheck_flag_requested_at=timezone.now())
    sent = len(devicecheck.requests)

    def work(_: int) -> bool:
        try:
            return devicecheck_flag_device.run(enrolled.pk)
        finally:
            connection.close()

    assert run_concurrently(4, work) == [True] * 4
    assert len(devicecheck.requests) - sent <= 4
    assert devicecheck.state_of(phone.physical_id)["bit0"] is True  # type: ignore[index]
    enrolled.refresh_from_db()
    assert enrolled.devicecheck_flagged_at is not None
    pending_an_hour(enrolled)
    assert devicecheck_flag_pending() == 0
