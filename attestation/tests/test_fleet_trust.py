"""Issue 17, done when: "an operator can see in the admin which devices are attested,
reduced, unattested or flagged". Each device's trust is computed from real evaluations
(``device_health.evaluate``) and real device states, shown as a column and a filter of the
device registry and counted in the fleet view, in one query per page whatever the fleet."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from attestation.models import Device, Platform, RegisteredApp, SecurityLevel
from device_health.evaluate import evaluate, persist
from device_health.fleet import TRUST, Trust, trust_counts, with_trust

pytestmark = pytest.mark.django_db

GENUINE: dict[str, Any] = {
    "key_attestation": {"os_version": 150000, "os_patch_level": int(f"{timezone.now():%Y%m}"),
                        "root_of_trust": {"verified_boot_state": "Verified", "device_locked": True}},
    "play_integrity": {"device_recognition_verdict": ["MEETS_DEVICE_INTEGRITY"],
                       "app_recognition_verdict": "PLAY_RECOGNIZED"},
}
ROOTED: dict[str, Any] = {**GENUINE, "key_attestation": {
    **GENUINE["key_attestation"], "root_of_trust": {"verified_boot_state": "Unverified", "device_locked": False}}}


def _device(app: RegisteredApp, key_id: str, **fields: Any) -> Device:
    defaults: dict[str, Any] = {"public_key": "-", "security_level": SecurityLevel.TEE, "verdict": GENUINE}
    device = Device.objects.create(platform=app.platform, app=app, key_id=key_id, **{**defaults, **fields})
    now = timezone.now()
    persist(evaluate(device, {}, now), now, trigger="test")
    return device


@pytest.fixture
def fleet(client_factory: Any) -> dict[str, Device]:
    client = client_factory(name="Orders app")
    android = RegisteredApp.objects.create(client=client, platform=Platform.ANDROID, android_package_name="com.ex")
    ios = RegisteredApp.objects.create(client=client, platform=Platform.IOS, ios_team_id="ABCDE12345",
                                       ios_bundle_id="b")
    return {
        "genuine": _device(android, "genuine"),
        "rooted": _device(android, "rooted", verdict=ROOTED),  # default rules: denied (restricted)
        "old-phone": _device(android, "old-phone", attested=False, security_level=SecurityLevel.NONE,
                             verdict={"unattested": {"reason": "not_supported"}}),
        "flagged-by-us": _device(ios, "flagged-by-us", security_level=SecurityLevel.SECURE_ENCLAVE,
                                 verdict={"environment": "production"}, devicecheck_flagged_at=timezone.now()),
        "flagged-at-apple": _device(ios, "flagged-at-apple", security_level=SecurityLevel.SECURE_ENCLAVE, verdict={
            "environment": "production",
            "devicecheck": {"status": "ok", "bit0": True, "bit1": False, "last_update_time": "2026-11"}}),
    }


def test_each_device_gets_the_first_trust_that_holds(fleet: dict[str, Device]) -> None:
    trust = dict(with_trust(Device.objects.all()).values_list("key_id", TRUST))
    assert trust == {"genuine": Trust.ATTESTED, "rooted": Trust.REDUCED, "old-phone": Trust.UNATTESTED,
                     "flagged-by-us": Trust.FLAGGED, "flagged-at-apple": Trust.FLAGGED}
    assert {(r["platform"], r["trust"], r["devices"]) for r in trust_counts()} == {
        ("android", "attested", 1), ("android", "reduced", 1), ("android", "unattested", 1), ("ios", "flagged", 2)}
    assert trust_counts(client_id=999_999) == []


@pytest.mark.parametrize(("trust", "expected"), [
    (Trust.ATTESTED, {"genuine"}), (Trust.REDUCED, {"rooted"}), (Trust.UNATTESTED, {"old-phone"}),
    (Trust.FLAGGED, {"flagged-by-us", "flagged-at-apple"}),
])
def test_the_device_registry_filters_on_trust(
    admin_client: Any, fleet: dict[str, Device], trust: Trust, expected: set[str],
) -> None:
    response = admin_client.get(reverse("admin:attestation_device_changelist"), {"trust": trust.value})
    assert response.status_code == 200
    shown = {d.key_id for d in response.context["cl"].result_list}
    assert shown == expected


def test_the_trust_column_costs_no_query_per_device(admin_client: Any, fleet: dict[str, Device]) -> None:
    url = reverse("admin:attestation_device_changelist")
    with CaptureQueriesContext(connection) as few:
        page = admin_client.get(url)
    assert page.status_code == 200 and b"Unattested" in page.content and b"Flagged" in page.content
    assert b"<td class=\"field-trust\">Reduced</td>" in page.content  # a restricted device reads "Reduced"
    app = fleet["genuine"].app
    for n in range(5):
        _device(app, f"more-{n}")
    with CaptureQueriesContext(connection) as more:
        assert admin_client.get(url).status_code == 200
    assert len(more.captured_queries) == len(few.captured_queries)


def test_an_unknown_trust_value_filters_nothing(admin_client: Any, fleet: dict[str, Device]) -> None:
    response = admin_client.get(reverse("admin:attestation_device_changelist"), {"trust": "trusted';--"})
    assert response.status_code in (200, 302)  # the admin's own answer to an unknown filter value, never a 500


def test_the_fleet_view_counts_devices_by_trust(admin_client: Any, fleet: dict[str, Device]) -> None:
    response = admin_client.get(reverse("admin:device_health_devicehealth_fleet"))
    assert response.status_code == 200 and b'id="fleet-trust"' in response.content
    assert [(r["platform"], r["trust"], r["devices"]) for r in response.context["trust"]] == [
        ("android", "attested", 1), ("android", "reduced", 1), ("android", "unattested", 1), ("ios", "flagged", 2)]
    assert b"?trust=unattested&amp;platform__exact=android" in response.content
