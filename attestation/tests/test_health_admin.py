"""Issue 7 §4-5: admins see each device's health, the deciding rule and the fleet; users
see on their account page why a device is restricted and what to do."""

from __future__ import annotations

from typing import Any

import pytest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from attestation.models import Device, Platform, RegisteredApp
from device_health.evaluate import evaluate, persist
from device_health.models import DeviceHealth, HealthPolicy, HealthRule
from device_health.user_view import restrictions_for

pytestmark = pytest.mark.django_db

ANDROID_VERDICT: dict[str, Any] = {
    "key_attestation": {"os_version": 140000, "os_patch_level": 202301,
                        "root_of_trust": {"verified_boot_state": "Verified", "device_locked": True}},
    "play_integrity": {"device_recognition_verdict": ["MEETS_DEVICE_INTEGRITY"], "app_recognition_verdict": "PLAY_RECOGNIZED"},
}


@pytest.fixture
def fleet(client_factory: Any, django_user_model: Any) -> dict[str, Any]:
    """Three Android devices (two outdated, one rooted) and one iPhone sharing its screen."""
    from sessions.models import DeviceSession

    client = client_factory(name="Orders app")
    owner = django_user_model.objects.create_user(username="bob", password="x" * 16)
    android = RegisteredApp.objects.create(client=client, platform=Platform.ANDROID, android_package_name="com.example")
    ios = RegisteredApp.objects.create(client=client, platform=Platform.IOS, ios_team_id="ABCDE12345", ios_bundle_id="b")
    now = timezone.now()
    rooted: dict[str, Any] = {**ANDROID_VERDICT, "key_attestation": {**ANDROID_VERDICT["key_attestation"],
                                                     "root_of_trust": {"verified_boot_state": "Unverified", "device_locked": False}}}
    devices: list[tuple[Device, dict[str, Any] | None]] = [
        (Device.objects.create(platform="android", app=android, key_id=f"a{i}", public_key="-", security_level="tee",
                               verdict=verdict), None)
        for i, verdict in enumerate([ANDROID_VERDICT, ANDROID_VERDICT, rooted])
    ]
    devices.append((Device.objects.create(platform="ios", app=ios, key_id="i1", public_key="-",
                                          security_level="secure_enclave", verdict={"environment": "production"}),
                    {"os_version": "18.1", "screen_mirrored": True}))
    for device, signals in devices:
        persist(evaluate(device, signals or {}, now), now, trigger="test")
    for device, _ in devices[2:]:
        DeviceSession.objects.create(sid=f"s-{device.key_id}", user=owner, client=client, auth_time=now, device=device)
    return {"client": client, "owner": owner, "devices": [d for d, _ in devices]}


def test_fleet_view_counts_failing_rules_by_platform_and_os_version(admin_client: Any, fleet: dict[str, Any]) -> None:
    response = admin_client.get(reverse("admin:device_health_devicehealth_fleet"))
    assert response.status_code == 200
    failing = {(r["rule"], r["platform"], r["os_version"]): r["devices"] for r in response.context["failing"]}
    assert failing[("outdated-patch", "android", "14.0.0")] == 3
    assert failing[("rooted-boot", "android", "14.0.0")] == 1
    assert failing[("unlocked-bootloader", "android", "14.0.0")] == 1
    assert failing[("screen-capture", "ios", "18.1")] == 1
    outcomes = {(r["platform"], r["outcome"]): r["devices"] for r in response.context["outcomes"]}
    assert outcomes == {("android", "reduce"): 2, ("android", "deny"): 1, ("ios", "reduce"): 1}
    assert b"outdated-patch" in response.content and b"fleet-failing" in response.content
    per_client = admin_client.get(reverse("admin:device_health_devicehealth_fleet"), {"client": "999999"})
    assert per_client.context["failing"] == []
    odd = admin_client.get(reverse("admin:device_health_devicehealth_fleet"), {"client": "\u00b2"})
    assert odd.status_code == 200  # not a client id: the whole fleet, not a 500


def test_fleet_view_needs_the_view_permission(django_user_model: Any, fleet: dict[str, Any]) -> None:
    """Staff status alone opens the admin, not the fleet's numbers: the page asks for the
    permission to view device health, like the change list it summarises."""
    from django.contrib.auth.models import Permission
    from django.test import Client

    from accounts.testing import sign_in_with_second_factor

    staff = django_user_model.objects.create_user("auditor", password="x" * 16, is_staff=True)
    client = sign_in_with_second_factor(Client(), staff, "x" * 16)
    url = reverse("admin:device_health_devicehealth_fleet")
    assert client.get(url).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_devicehealth"))
    assert client.get(url).status_code == 200


def test_device_health_pages_show_the_deciding_rule_and_facts(admin_client: Any, fleet: dict[str, Any]) -> None:
    listing = admin_client.get(reverse("admin:device_health_devicehealth_changelist"), {"outcome": "deny"})
    assert listing.status_code == 200 and b"rooted-boot" in listing.content
    health = DeviceHealth.objects.get(outcome="deny")
    page = admin_client.get(reverse("admin:device_health_devicehealth_change", args=[health.pk]))
    assert page.status_code == 200
    assert b"verified boot state Unverified" in page.content and b"android_key_attestation" in page.content


def test_policy_admin_adds_the_default_rules(admin_client: Any, fleet: dict[str, Any]) -> None:
    policy = HealthPolicy.objects.create(client=fleet["client"])
    changelist = reverse("admin:device_health_healthpolicy_changelist")
    admin_client.post(changelist, {"action": "add_default_rules", "_selected_action": [policy.pk]})
    from device_health.rules import default_rules

    added = dict(HealthRule.objects.filter(policy=policy).values_list("name", "parameter"))
    assert len(added) == len(default_rules()) == 12  # 10 + devicecheck-flagged, unattested-device
    assert added["software-key"] == "" and added["app-unlicensed"] == "" and added["devicecheck-flagged"] == "0"
    assert added["integrity-failed"] == "device"  # the Android app's min_integrity_level, as the verifier had it
    page = admin_client.get(reverse("admin:device_health_healthpolicy_change", args=[policy.pk]))
    assert page.status_code == 200 and b"outdated-patch" in page.content


def test_user_sees_why_and_what_to_do(fleet: dict[str, Any], rf: Any) -> None:
    entries = restrictions_for(fleet["owner"])
    by_outcome = {e["outcome"]: e for e in entries}
    assert set(by_outcome) == {"deny", "reduce"}
    assert by_outcome["reduce"]["device"] == "iPhone or iPad (18.1)" and by_outcome["reduce"]["client"] == "Orders app"
    assert "Turn off screen recording" in by_outcome["reduce"]["what_to_do"][0]
    assert any("Verified boot state unverified" in why for why in by_outcome["deny"]["why"])
    html = render_to_string("accounts/device_health.html", {"user": fleet["owner"]})
    assert "Device health" in html and "Turn off screen recording" in html and 'data-outcome="deny"' in html


def test_nothing_shown_to_users_with_healthy_devices(django_user_model: Any) -> None:
    someone = django_user_model.objects.create_user(username="carol", password="x" * 16)
    assert restrictions_for(someone) == []
    assert "Device health" not in render_to_string("accounts/device_health.html", {"user": someone})


def test_revalidation_runs_in_a_query_budget(fleet: dict[str, Any], django_assert_max_num_queries: Any) -> None:
    """Per batch: devices, their snapshots, one policy query per client; per device: the
    snapshot upsert (savepoints included), and for the denied one the revocation of its session."""
    from device_health import tasks

    with django_assert_max_num_queries(40):
        assert tasks.revalidate_devices() == {"reduce": 3, "deny": 1}
    with django_assert_max_num_queries(30):  # nothing changed: no findings rewritten, no events
        tasks.revalidate_devices()


def test_account_page_shows_the_restriction(client: Any, fleet: dict[str, Any]) -> None:
    client.force_login(fleet["owner"])
    page = client.get(reverse("accounts:profile"))
    assert page.status_code == 200
    assert b'id="device-health"' in page.content and b"Turn off screen recording" in page.content
