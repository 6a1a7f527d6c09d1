"""Device health under concurrency (PostgreSQL): token requests of one device evaluated at
the same time announce a change of outcome once (the snapshot row is locked; a snapshot
that came with the device, unlocked, is read again under the lock before a change)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from attestation.models import Device, Platform, RegisteredApp
from core.models import SecurityEvent
from core.policy import TokenContext
from device_health.evaluate import evaluate, persist
from device_health.policy import token_policy


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("related", [(), ("health",)], ids=["snapshot-read", "snapshot-with-device"])
def test_concurrent_token_requests_of_one_device_announce_once(client_factory: Any, related: tuple[str, ...]) -> None:
    client = client_factory()
    app = RegisteredApp.objects.create(client=client, platform=Platform.IOS, ios_team_id="ABCDE12345", ios_bundle_id="b")
    device = Device.objects.create(platform="ios", app=app, key_id="k", public_key="-", security_level="secure_enclave")
    now = timezone.now()
    persist(evaluate(device, {"os_version": "18.1"}, now), now, trigger="test")  # allow, stored
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def refresh() -> None:
        try:
            context = TokenContext(grant_type="refresh_token", client=client, user=None, session=None, scope="openid",
                                   now=timezone.now(), request=None,
                                   device=Device.objects.select_related(*related).get(pk=device.pk),
                                   device_signals={"os_version": "18.1", "screen_captured": True})
            barrier.wait(timeout=10)
            with transaction.atomic():  # the issuing transaction
                decision = token_policy(context)
            assert decision is not None and decision.scope == "openid profile"
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert SecurityEvent.objects.filter(event_type="device.compliance_changed").count() == 1
