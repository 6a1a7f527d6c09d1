"""The DeviceCheck scenario of ``make demo`` against a live server on PostgreSQL, with Apple's
DeviceCheck API played by the stand-in on 127.0.0.1: enroll, the operator revokes for abuse
(bit 0 set at the stand-in by the Celery task), the app is reinstalled (a new App Attest key
on the same phone) and its new enrollment is refused."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from attestation.models import Device, DeviceStatus
from attestation.testing.devicecheck_standin import DeviceCheckStandIn, device_of
from core.models import SecurityEvent
from device_health.models import DeviceHealth, HealthOutcome
from sessions.models import DeviceSession, SessionStatus
from simulator.scenarios import devicecheck_reinstall

pytestmark = [pytest.mark.live, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.usefixtures("eager_celery")
def test_flagged_phone_is_refused_after_reinstall(issuer: str, settings: Any, devicecheck: DeviceCheckStandIn) -> None:
    settings.ATTESTATION_ALLOW_TEST_ROOTS = True
    boot = StringIO()
    call_command("bootstrap_demo", stdout=boot)
    assert "devicecheck client_id=vigil-demo-devicecheck" in boot.getvalue()
    lines: list[str] = []
    devicecheck_reinstall.run(issuer, lines.append)
    text = "\n".join(lines)
    assert "Apple confirmed: bit 0 of this phone is set" in text
    assert "its new enrollment is refused: invalid_grant" in text and "devicecheck-flagged" in text

    first, second = Device.objects.filter(app__client__client_id="vigil-demo-devicecheck").order_by("pk")
    assert first.status == DeviceStatus.REVOKED and first.devicecheck_flagged_at is not None
    assert second.key_id != first.key_id and second.verdict["devicecheck"]["bit0"] is True
    assert DeviceHealth.objects.get(device=second).outcome == HealthOutcome.DENY
    assert [s.status for s in DeviceSession.objects.filter(client__client_id="vigil-demo-devicecheck")] == [
        SessionStatus.REVOKED]
    tokens = [json.loads(r["body"])["device_token"] for r in devicecheck.requests]
    # query, update (with the token kept from the enrollment), query (the reinstalled app's own token)...
    assert len(tokens) == 3 and tokens[1] == tokens[0] and tokens[2] != tokens[0]
    assert {device_of(t) for t in tokens} == {devicecheck.bits.popitem()[0][1]}  # ...all of one phone
    assert [e.details["operation"] for e in SecurityEvent.objects.filter(event_type="attestation.devicecheck")
            .order_by("pk")] == ["query", "update", "query"]
