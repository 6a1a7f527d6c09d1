"""Issue 8: device health on the attested refresh (the hot path) costs no SQL statement when
nothing changed (rules from the config cache, the snapshot brought with the device, no
write of an unchanged snapshot), and still sees every rule change and every real change
of outcome at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from attestation.models import Device, Platform, RegisteredApp
from core import config_cache
from core.models import SecurityEvent
from core.policy import TokenContext
from device_health import evaluate as evaluate_module
from device_health.models import DeviceHealth, HealthOutcome, HealthPolicy, HealthRule
from device_health.policy import DeviceHealthRefused, token_policy
from device_health.rules import rules_for_client
from idp.tests.conftest import browser, mobile_client, user  # noqa: F401

from .test_health_token_endpoint import android_app, ios_app, iphone, pixel  # noqa: F401

pytestmark = pytest.mark.django_db

HEALTHY = {"os_version": "18.1"}
CAPTURING = {"os_version": "18.1", "screen_captured": True}


@pytest.fixture
def phone(client_factory: Any) -> Device:
    client = client_factory()
    app = RegisteredApp.objects.create(client=client, platform=Platform.IOS, ios_team_id="ABCDE12345", ios_bundle_id="b")
    return Device.objects.create(platform="ios", app=app, key_id="k", public_key="-", security_level="secure_enclave",
                                 verdict={"environment": "production"})


def as_refreshed(device: Device) -> Device:
    """The device as the refresh's session query brings it (``select_related`` of its health)."""
    return Device.objects.select_related("app__client", "health").get(pk=device.pk)


def refresh(device: Device, signals: dict[str, Any], now: Any) -> Any:
    context = TokenContext(grant_type="refresh_token", client=device.app.client, user=None, session=None,
                           scope="openid profile email", now=now, request=None, device=device, device_signals=signals)
    return token_policy(context)


def statements_on(queries: CaptureQueriesContext, table: str) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if f'"{table}"' in q["sql"]]


def test_unchanged_refresh_runs_no_statement(phone: Device, django_assert_num_queries: Any) -> None:
    now = timezone.now()
    assert refresh(phone, HEALTHY, now) is None  # enrollment: the first snapshot (and the rules cached)
    device = as_refreshed(phone)
    with django_assert_num_queries(0):  # no policy, no snapshot read, no UPDATE
        assert refresh(device, HEALTHY, now + timedelta(minutes=1)) is None
        assert refresh(device, HEALTHY, now + timedelta(minutes=2)) is None
    rules = rules_for_client(phone.app.client)
    assert isinstance(rules, tuple) and rules is rules_for_client(phone.app.client)  # shared, immutable


def test_without_the_snapshot_on_the_device_it_is_read_once(phone: Device, django_assert_num_queries: Any) -> None:
    now = timezone.now()
    refresh(phone, HEALTHY, now)
    device = Device.objects.select_related("app__client").get(pk=phone.pk)
    with django_assert_num_queries(1):  # the locked read of the snapshot, nothing else
        assert refresh(device, HEALTHY, now + timedelta(minutes=1)) is None


def test_evaluated_at_is_written_only_once_it_is_old(phone: Device, settings: Any,
                                                     django_assert_num_queries: Any) -> None:
    settings.ATTESTATION_HEALTH_EVALUATED_AT_INTERVAL = 600
    start = timezone.now()
    refresh(phone, HEALTHY, start)
    device = as_refreshed(phone)
    with django_assert_num_queries(0):
        refresh(device, HEALTHY, start + timedelta(minutes=9))
    assert DeviceHealth.objects.get().evaluated_at == start
    later = start + timedelta(minutes=11)
    with CaptureQueriesContext(connection) as queries:
        refresh(device, HEALTHY, later)
    writes = statements_on(queries, DeviceHealth._meta.db_table)
    assert len(queries.captured_queries) == 1 and writes[0].startswith("UPDATE")
    assert '"outcome"' not in writes[0]  # only the timestamp
    assert DeviceHealth.objects.get().evaluated_at == later
    settings.ATTESTATION_HEALTH_EVALUATED_AT_INTERVAL = 0
    with django_assert_num_queries(1):
        refresh(device, HEALTHY, later + timedelta(seconds=1))


def test_the_date_of_a_fresh_integrity_verdict_waits_for_evaluated_at(phone: Device, settings: Any,
                                                                      django_assert_num_queries: Any) -> None:
    settings.ATTESTATION_HEALTH_EVALUATED_AT_INTERVAL = 600
    phone.platform, phone.verdict = "android", {"play_integrity": {
        "device_recognition_verdict": ["MEETS_DEVICE_INTEGRITY"], "app_recognition_verdict": "PLAY_RECOGNIZED",
        "checked_at": "2026-01-01T10:00:00+00:00"}}
    phone.save()
    start = timezone.now()
    refresh(phone, HEALTHY, start)
    device = as_refreshed(phone)
    device.verdict["play_integrity"]["checked_at"] = "2026-01-01T10:05:00+00:00"  # the verifier's fresh verdict
    with django_assert_num_queries(0):
        refresh(device, HEALTHY, start + timedelta(minutes=5))
    refresh(device, HEALTHY, start + timedelta(minutes=11))
    stored = DeviceHealth.objects.get()
    assert stored.facts["integrity_checked_at"]["value"] == "2026-01-01T10:05:00+00:00"
    assert stored.evaluated_at == start + timedelta(minutes=11)
    device.verdict["play_integrity"]["device_recognition_verdict"] = ["MEETS_STRONG_INTEGRITY"]  # a real change
    refresh(device, HEALTHY, start + timedelta(minutes=12))
    assert DeviceHealth.objects.get().facts["device_recognition"]["value"] == "strong"


def test_a_changed_outcome_is_written_and_announced(phone: Device, monkeypatch: Any,
                                                    django_assert_num_queries: Any) -> None:
    emitted: list[dict[str, Any]] = []

    def emit(device: Device, **kw: Any) -> list[Any]:
        emitted.append(kw)
        return []

    monkeypatch.setattr("shared_signals.transmitter.emit_device_compliance_change", emit)
    now = timezone.now()
    refresh(phone, HEALTHY, now)
    device = as_refreshed(phone)
    with CaptureQueriesContext(connection) as queries:
        decision = refresh(device, CAPTURING, now + timedelta(minutes=1))
    assert decision is not None and decision.scope == "openid profile"
    snapshot = statements_on(queries, DeviceHealth._meta.db_table)
    assert snapshot[0].startswith("SELECT")  # decided again on the (locked) row before writing
    assert any(sql.startswith("UPDATE") for sql in snapshot)
    stored = DeviceHealth.objects.get()
    assert stored.outcome == HealthOutcome.REDUCE and stored.deciding_rule == "screen-capture"
    assert stored.signals == CAPTURING and stored.outcome_changed_at == now + timedelta(minutes=1)
    event = SecurityEvent.objects.get(event_type="device.compliance_changed")
    assert event.details["previous_outcome"] == "allow" and event.details["new_outcome"] == "reduce"
    assert [(e["previous_status"], e["current_status"]) for e in emitted] == [("compliant", "not-compliant")]
    with django_assert_num_queries(0):  # the same again: nothing to write, nothing to announce
        assert refresh(device, CAPTURING, now + timedelta(minutes=2)) is not None
    assert SecurityEvent.objects.filter(event_type="device.compliance_changed").count() == 1
    assert refresh(as_refreshed(phone), HEALTHY, now + timedelta(minutes=3)) is None  # recovery
    assert DeviceHealth.objects.get().outcome == HealthOutcome.ALLOW
    assert SecurityEvent.objects.filter(event_type="device.compliance_changed").count() == 2
    assert emitted[-1] == {"previous_status": "not-compliant", "current_status": "compliant",
                           "reason_admin": "device health: all rules pass"}


def test_a_new_signal_with_the_same_outcome_is_still_stored(phone: Device) -> None:
    """Signals feed the periodic revalidation: a changed one is written even when the outcome stays."""
    now = timezone.now()
    refresh(phone, HEALTHY, now)
    refresh(as_refreshed(phone), {**HEALTHY, "screen_mirrored": False}, now + timedelta(minutes=1))
    assert DeviceHealth.objects.get().signals == {**HEALTHY, "screen_mirrored": False}
    assert not SecurityEvent.objects.filter(event_type="device.compliance_changed").exists()


def test_a_rule_saved_is_applied_at_the_next_refresh(phone: Device, django_capture_on_commit_callbacks: Any) -> None:
    now = timezone.now()
    debugging = {**HEALTHY, "debugger_attached": True}  # no default rule looks at it
    assert refresh(phone, debugging, now) is None
    generation = cache.get(config_cache.GENERATION_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        policy = HealthPolicy.objects.create(client=phone.app.client)
        HealthRule.objects.create(policy=policy, name="no-debugger", condition="debugger_attached", outcome="deny")
    assert cache.get(config_cache.GENERATION_KEY) != generation  # every process reloads
    with pytest.raises(DeviceHealthRefused):
        refresh(as_refreshed(phone), debugging, now + timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        HealthRule.objects.filter(name="no-debugger").get().delete()
    assert refresh(as_refreshed(phone), debugging, now + timedelta(minutes=2)) is None


def test_default_rules_added_in_the_admin_apply_at_once(phone: Device, admin_client: Any,
                                                        django_capture_on_commit_callbacks: Any) -> None:
    """The admin action adds rules with ``bulk_create`` (no signals): the queryset announces the change
    (``core.config_cache.ConfigQuerySet``)."""
    old_ios = {"os_version": "16.0"}
    policy = HealthPolicy.objects.create(client=phone.app.client, include_default_rules=False)
    now = timezone.now()
    assert refresh(phone, old_ios, now) is None  # no rules at all: allowed, and that is cached
    generation = cache.get(config_cache.GENERATION_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("admin:device_health_healthpolicy_changelist"),
                          {"action": "add_default_rules", "_selected_action": [policy.pk]})
    assert HealthRule.objects.filter(policy=policy).count() == 12  # 8 + software-key, app-unlicensed, devicecheck, unattested
    assert cache.get(config_cache.GENERATION_KEY) != generation
    decision = refresh(as_refreshed(phone), old_ios, now + timedelta(minutes=1))
    assert decision is not None and decision.reasons == ["device_health:outdated-ios"]


def test_default_rules_follow_a_settings_change(phone: Device, settings: Any) -> None:
    now = timezone.now()
    assert refresh(phone, {"os_version": "17.2"}, now) is None
    settings.ATTESTATION_HEALTH_MIN_IOS_VERSION = "18.0"
    assert refresh(as_refreshed(phone), {"os_version": "17.2"}, now + timedelta(minutes=1)) is not None


def test_the_snapshot_loaded_with_the_device_is_the_one_read(phone: Device) -> None:
    assert evaluate_module.preloaded_health(phone) is evaluate_module._UNSET
    assert evaluate_module.preloaded_health(as_refreshed(phone)) is None  # loaded: the device has none yet
    refresh(phone, HEALTHY, timezone.now())
    assert isinstance(evaluate_module.preloaded_health(as_refreshed(phone)), DeviceHealth)


# ------------------------------------------------------------------ through the token endpoint

@pytest.mark.usefixtures("allow_test_roots")
@pytest.mark.parametrize("platform", ["ios", "android"])
def test_an_unchanged_refresh_reads_no_policy_and_writes_no_snapshot(platform: str, request: Any) -> None:
    """Android refreshes carry a fresh Play Integrity verdict: its date alone is not a change."""
    app = request.getfixturevalue("iphone" if platform == "ios" else "pixel")
    assert app.login(HEALTHY).status_code == 200
    assert app.refresh(HEALTHY).status_code == 200  # the login created the first signing key: a config change
    with CaptureQueriesContext(connection) as queries:
        assert app.refresh(HEALTHY).status_code == 200
    for table in (HealthPolicy._meta.db_table, HealthRule._meta.db_table):
        assert statements_on(queries, table) == []
    snapshot = statements_on(queries, DeviceHealth._meta.db_table)
    assert not [sql for sql in snapshot if not sql.startswith("SELECT")]
    # the refresh's own token lookup brings the health row along: no read of its own
    assert len([sql for sql in snapshot if f'FROM "{DeviceHealth._meta.db_table}"' in sql]) == 0


def test_facts_as_stored_are_what_asdict_gives() -> None:
    from dataclasses import asdict

    from device_health.facts import Fact, HealthFacts

    facts = HealthFacts(apps_detected=Fact(["KNOWN_CAPTURING"], "play_integrity", "google_verdict"),
                        sdk_version=Fact(35, "play_integrity", "google_verdict"))
    stored = facts.as_json()
    assert stored == {name: asdict(fact) for name, fact in sorted(facts.items())}
    assert list(stored) == ["apps_detected", "sdk_version"]
    stored["apps_detected"]["value"].append("x")
    assert facts.value("apps_detected") == ["KNOWN_CAPTURING"]  # a copy, as asdict's


def test_rendering_a_refusal_writes_nothing_and_the_server_keeps_it_once(phone: Device) -> None:
    """No error renders side effects: the refusal's snapshot and compliance event are written by
    the server's error handling (``KeptAfterRollback``), once, however often the error renders."""
    policy = HealthPolicy.objects.create(client=phone.app.client)
    HealthRule.objects.create(policy=policy, name="no-capture", condition="screen_captured", outcome="deny")
    with pytest.raises(DeviceHealthRefused) as refused:
        refresh(phone, CAPTURING, timezone.now())
    error = refused.value
    status, _, _ = error()
    error()
    assert status == 400
    assert not DeviceHealth.objects.exists()
    assert not SecurityEvent.objects.filter(event_type="device.compliance_changed").exists()
    error.run_after_rollback()
    error.run_after_rollback()
    assert DeviceHealth.objects.get().outcome == HealthOutcome.DENY
    assert SecurityEvent.objects.filter(event_type="device.compliance_changed").count() == 1
