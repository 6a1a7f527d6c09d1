"""Revalidation seen from the app: a stale or listed device loses access at its next
refresh with nobody acting, through the real token endpoint and attestation simulators.

The app, its simulated devices and their fixtures come from ``test_device_bound_tokens``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from attestation.models import Device, DeviceStatus
from sessions import revalidation, tasks
from sessions.models import DeviceSession, SessionStatus

from .test_device_bound_tokens import (  # noqa: F401 - fixtures
    App,
    android_app,
    ios_app,
    iphone,
    pixel,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def policy(settings: Any) -> None:
    settings.SESSIONS_ATTESTATION_MAX_AGE_SECONDS = 86400
    settings.SESSIONS_REATTESTATION_GRACE_SECONDS = 3600


def test_a_device_in_use_stays_fresh(iphone: App) -> None:
    assert iphone.login().status_code == 200
    assert iphone.refresh().status_code == 200
    result = revalidation.revalidate_devices(now=timezone.now() + timedelta(hours=23))
    assert result.as_dict() == {"revoked_sessions": 0, "marked_devices": 0}
    assert iphone.refresh().status_code == 200


def test_stale_device_is_sent_back_to_login_at_its_next_refresh(iphone: App) -> None:
    assert iphone.login().status_code == 200
    assert revalidation.revalidate_devices(now=timezone.now() + DAY + timedelta(minutes=1)).marked_devices == 1

    response = iphone.refresh()
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status_reason == "reattestation_required"
    assert iphone.login().status_code == 200  # attesting again clears the mark
    assert not Device.objects.get().requires_reattestation


def test_idle_stale_session_is_revoked_after_the_grace_period(iphone: App) -> None:
    assert iphone.login().status_code == 200
    now = timezone.now()
    revalidation.revalidate_devices(now=now + DAY + timedelta(minutes=1))
    assert revalidation.revalidate_devices(now=now + DAY + timedelta(hours=1, minutes=1)).revoked_sessions == 1

    assert DeviceSession.objects.get().status_reason == "attestation_stale"
    response = iphone.refresh()
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_listed_android_certificate_suspends_the_device(pixel: App, tmp_path: Path) -> None:
    assert pixel.login().status_code == 200
    serials = Device.objects.get().verdict["key_attestation"]["chain_serials"]
    intermediate = serials[1]
    status_list = tmp_path / "status.json"
    status_list.write_text(json.dumps({"entries": {intermediate: {"status": "REVOKED", "reason": "KEY_COMPROMISE"}}}))

    assert tasks.suspend_revoked_android_devices.apply(kwargs={"path": str(status_list)}).get() == 1

    device = Device.objects.get()
    assert device.status == DeviceStatus.SUSPENDED and intermediate in device.status_reason
    response = pixel.refresh()
    assert response.status_code == 400 and response.json()["error"] == "invalid_client_attestation"
    assert "device_suspended" in response.json()["error_description"]
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE  # suspension is reversible
