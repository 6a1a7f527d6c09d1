"""Issue 17 part 2 against a live server on PostgreSQL, through the device simulators: a
device that cannot attest enrolls with its DPoP key, gets a reduced token marked
``device_attested: false``, refreshes, then upgrades by attesting (iOS and Android)."""

from __future__ import annotations

from typing import Any

import pytest

from attestation.models import Device
from core.models import SecurityEvent
from sessions.models import DeviceSession, SessionStatus
from simulator.demo_setup import ensure_unattested_client
from simulator.scenarios import unattested_device

pytestmark = [pytest.mark.live, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def unattested_client(issuer: str, settings: Any) -> Any:
    settings.ATTESTATION_ALLOW_TEST_ROOTS = True
    return ensure_unattested_client("e2e-unattested")


@pytest.mark.parametrize("platform", ["ios", "android"])
def test_unattested_device_scenario(platform: str, issuer: str, unattested_client: Any,
                                    django_user_model: Any) -> None:
    user = django_user_model.objects.create_user(username=f"old-{platform}", password=PASSWORD,
                                                 email=f"old-{platform}@example.com")
    lines: list[str] = []
    app = unattested_device.play(issuer, lines.append, client_id=unattested_client.client_id,
                                username=user.username, password=PASSWORD, platform=platform)
    text = "\n".join(lines)
    assert "device_attested=False" in text and "scope 'openid profile'" in text and "(reduced access)" in text
    assert "userinfo with the reduced token: HTTP 200" in text
    assert "session upgraded to the attested device" in text and "device_attested absent (attested)" in text
    session = DeviceSession.objects.select_related("device").get(user=user)
    assert session.status == SessionStatus.ACTIVE and getattr(session.device, "attested", None) is True
    assert session.dpop_jkt == app.jkt()
    assert Device.objects.unattested().filter(key_id=app.jkt()).count() == 1
    assert SecurityEvent.objects.filter(event_type="attestation.session_upgraded", session_id=session.sid).count() == 1


def test_the_demo_scenario_runs_after_bootstrap_demo(issuer: str, settings: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    settings.ATTESTATION_ALLOW_TEST_ROOTS = True
    out = StringIO()
    call_command("bootstrap_demo", stdout=out)
    assert "unattested  client_id=vigil-demo-unattested" in out.getvalue()
    lines: list[str] = []
    unattested_device.run(issuer, lines.append)
    assert any("session upgraded to the attested device" in line for line in lines)


def test_unattested_token_copied_with_another_key_is_refused(issuer: str, unattested_client: Any,
                                                             django_user_model: Any) -> None:
    from simulator.demo_setup import devices
    from simulator.mobile_app import MobileApp

    user = django_user_model.objects.create_user(username="old-phone", password=PASSWORD)
    app = MobileApp(issuer, unattested_client.client_id, devices()["android"], attested=False)
    assert app.login(user.username, PASSWORD).status_code == 200
    thief = MobileApp(issuer, unattested_client.client_id, devices()["android"], attested=False)
    thief.refresh_token = app.refresh_token
    stolen = thief.refresh()
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_dpop_proof"
    assert app.refresh().status_code == 200
