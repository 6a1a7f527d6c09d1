"""An attacker's review of the fallback for devices that cannot attest
(docs/unattested-devices.md): downgrades, upgrades abused or lost, DeviceCheck's outage on
the upgrade, the refresh rate, odd form parameters. Each negative test asserts the answer
and that nothing changed."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc.jwk import ECKey

from attestation.binding import RequestBinding, devicecheck_hash, grant_hash
from attestation.models import Device, RegisteredApp
from attestation.testing.devicecheck_standin import DeviceCheckStandIn
from core.models import SecurityEvent
from sessions.models import DeviceSession, RefreshToken, SessionStatus
from simulator.ios import IOSDevice

from .test_device_bound_tokens import APP_ID, HEADER, ios_app  # noqa: F401 - fixtures, used by name
from .test_unattested_devices import Unattested, enable_fallback, purpose_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]


def snapshot() -> tuple[Any, ...]:
    """What a refused request must leave as it was."""
    return (
        list(Device.objects.order_by("pk").values_list("pk", "attested", "status")),
        list(DeviceSession.objects.order_by("pk").values_list("pk", "device_id", "status", "dpop_jkt")),
        list(RefreshToken.objects.order_by("pk").values_list("pk", "rotated_at", "revoked_at")),
    )


def upgrade_with_devicecheck(app: Unattested, token: str) -> Any:
    """An upgrade whose enrollment carries a DeviceCheck token, bound into the attestation."""
    binding = RequestBinding(app.next_challenge, app.client_id, "refresh_token", grant_hash(app.refresh_token),
                             dpop_jkt=app.jkt(), devicecheck=devicecheck_hash(token))
    response = app.refresh(evidence={**app.device.enrollment_params(binding), "devicecheck_token": token})
    if response.status_code == 200:
        app.attested = True
    return response


@pytest.fixture
def checked_old_iphone(browser: Any, mobile_client: Any, ios_app: RegisteredApp,  # noqa: F811
                       devicecheck: DeviceCheckStandIn) -> Unattested:
    enable_fallback(ios_app)
    ios_app.devicecheck_mode, ios_app.devicecheck_on_failure = "optional", "fail_closed"
    ios_app.save()
    phone = IOSDevice(APP_ID, environment="production", devicecheck=True)
    return Unattested(browser, mobile_client.client.client_id, phone, ECKey.generate_key("P-256", private=True))


# --- DeviceCheck's outage on the upgrade ------------------------------------------------------------
def test_upgrade_during_an_apple_outage_is_503_and_burns_nothing(checked_old_iphone: Unattested,
                                                                 devicecheck: DeviceCheckStandIn,
                                                                 settings: Any) -> None:
    """Fail closed: Apple down is no evidence failing. Retrying through a long outage must not
    count attestation failures (SESSIONS_ATTESTATION_MAX_FAILURES would revoke the session)."""
    app = checked_old_iphone
    assert app.login().status_code == 200
    token = app.device.devicecheck_token()
    before = snapshot()
    devicecheck.fail(503)
    settings.SESSIONS_ATTESTATION_MAX_FAILURES = 3
    for _ in range(4):
        response = upgrade_with_devicecheck(app, token)
        assert response.status_code == 503, response.content
        assert response.json()["error"] == "temporarily_unavailable" and response["Retry-After"]
        assert purpose_of(response[HEADER]) == "enroll"
        app.next_challenge = response[HEADER]
        assert snapshot() == before
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    devicecheck.recover()
    upgraded = upgrade_with_devicecheck(app, token)
    assert upgraded.status_code == 200, upgraded.content
    assert getattr(DeviceSession.objects.select_related("device").get().device, "attested", None) is True
    refused = SecurityEvent.objects.filter(event_type="attestation.token_refused", reason="devicecheck_unavailable")
    assert refused.count() >= 4
