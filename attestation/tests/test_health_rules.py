"""Device-health rules on facts alone: how outcomes combine, platforms, unknown facts,
per-client policies and the defaults."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from device_health.facts import (
    APP_ATTEST,
    KEY_ATTESTATION,
    PLAY_INTEGRITY,
    SELF_REPORTED,
    Fact,
    HealthFacts,
    android_os_version,
    collect,
    patch_level,
    recognition_level,
)
from device_health.models import HealthOutcome, HealthPolicy, HealthRule
from device_health.rules import RuleSpec, decide, default_rules, graded_defaults, rules_for_client

NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)


def facts(**values: Any) -> HealthFacts:
    return HealthFacts({k: Fact(v, SELF_REPORTED if k.startswith("screen") else KEY_ATTESTATION, "t")
                        for k, v in values.items()})


def test_wire_formats_of_key_attestation_and_play_integrity() -> None:
    assert android_os_version(150000) == "15.0.0" and android_os_version(60001) == "6.0.1"
    assert android_os_version(0) is None
    assert patch_level(202510) == "2025-10" and patch_level(20251005) == "2025-10-05" and patch_level(7) is None
    assert recognition_level(["MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY"]) == "device"
    assert recognition_level(["MEETS_VIRTUAL_INTEGRITY"]) == "virtual" and recognition_level(None) == "none"


def test_patch_age_is_counted_in_months() -> None:
    rules = [r for r in default_rules() if r.name == "outdated-patch"]
    assert decide(rules, facts(os_patch_level="2025-11"), "android", NOW).outcome == HealthOutcome.ALLOW
    assert decide(rules, facts(os_patch_level="2025-10"), "android", NOW).outcome == HealthOutcome.REDUCE


def test_strictest_outcome_wins_and_reduce_rules_narrow_together() -> None:
    rules = [
        RuleSpec("a", "screen_captured", "reduce", scopes="openid profile email", lifetime=200),
        RuleSpec("b", "patch_older_than", "reduce", parameter="1", scopes="openid profile", lifetime=90),
    ]
    both = decide(rules, facts(screen_captured=True, os_patch_level="2020-01"), "android", NOW)
    assert both.outcome == "reduce" and both.scopes == "openid profile" and both.lifetime == 90
    assert both.deciding is not None and both.deciding.rule.name == "a"
    rules.append(RuleSpec("c", "bootloader_unlocked", "deny"))
    worst = decide(rules, facts(screen_captured=True, bootloader_locked=False), "android", NOW)
    assert worst.outcome == "deny" and worst.deciding is not None and worst.deciding.rule.name == "c"
    assert len(worst.findings) == 2


def test_platform_rules_and_unknown_facts_do_not_fire() -> None:
    assert decide(default_rules(), HealthFacts(), "android", NOW).outcome == HealthOutcome.ALLOW
    ios = decide(default_rules(), facts(os_version="16.4"), "ios", NOW)
    assert ios.outcome == "reduce" and ios.deciding is not None and ios.deciding.rule.name == "outdated-ios"
    android = decide(default_rules(), facts(os_version="14.0.0"), "android", NOW)
    assert android.outcome == HealthOutcome.ALLOW  # the iOS version rule is for iOS


def test_reduced_lifetime_never_exceeds_five_minutes() -> None:
    decision = decide([RuleSpec("x", "screen_captured", "reduce", lifetime=3600)], facts(screen_captured=True), "ios", NOW)
    assert decision.lifetime == 300


def test_facts_of_a_stored_android_verdict_carry_source_and_trust() -> None:
    class Device:
        platform, security_level = "android", "strongbox"
        verdict = {"key_attestation": {"os_version": 140000, "os_patch_level": 202401,
                                       "root_of_trust": {"verified_boot_state": "Verified", "device_locked": True}},
                   "play_integrity": {"device_recognition_verdict": ["MEETS_DEVICE_INTEGRITY"], "sdk_version": 34,
                                      "play_protect_verdict": "NO_ISSUES", "app_recognition_verdict": "PLAY_RECOGNIZED",
                                      "apps_detected": [], "recent_device_activity": "LEVEL_2"}}

    got = collect(Device(), {"screen_captured": True, "debugger_attached": "no"})
    assert got["os_patch_level"] == Fact("2024-01", KEY_ATTESTATION, "hardware_attested")
    assert got["device_recognition"] == Fact("device", PLAY_INTEGRITY, "google_verdict")
    assert got["screen_captured"] == Fact(True, SELF_REPORTED, "self_reported")
    assert "debugger_attached" not in got  # wrong type: ignored


def test_missing_root_of_trust_counts_as_unverified() -> None:
    class Device:
        platform, security_level, verdict = "android", "tee", {"key_attestation": {"os_version": 150000}}

    got = collect(Device(), {})
    assert got.value("verified_boot_state") == "Missing" and got.value("bootloader_locked") is False
    Device.verdict = {}
    unknown = collect(Device(), {})  # nothing known: no rule fires
    assert unknown.value("verified_boot_state") is None and unknown.value("device_recognition") is None
    assert decide(default_rules(), unknown, "android", NOW).outcome == HealthOutcome.ALLOW


def test_ios_facts() -> None:
    class Device:
        platform, security_level, verdict = "ios", "secure_enclave", {"environment": "production"}

    got = collect(Device(), {"os_version": "18.2"}, receipt_risk_metric=4)
    assert got["genuine_app"].source == APP_ATTEST and got.value("receipt_risk_metric") == 4


@pytest.mark.django_db
def test_client_policy_rules_then_defaults_unless_opted_out(client_factory: Any) -> None:
    client = client_factory()
    assert [r.name for r in rules_for_client(client)] == [r.name for r in default_rules()]
    policy = HealthPolicy.objects.create(client=client, reduced_scopes="openid")
    HealthRule.objects.create(policy=policy, name="screen-capture", condition="screen_captured", outcome="step_up")
    HealthRule.objects.create(policy=policy, name="off", condition="debugger_attached", outcome="deny", enabled=False)
    rules = rules_for_client(client)
    assert rules[0] == RuleSpec("screen-capture", "screen_captured", "step_up", scopes="openid")
    assert "off" not in [r.name for r in rules]
    assert [r.name for r in rules].count("screen-capture") == 1  # the client's rule replaces the default
    patch = next(r for r in rules if r.name == "outdated-patch")
    assert patch.scopes == "openid" and patch.lifetime is None  # the policy's reduced scopes apply to defaults
    policy.include_default_rules = False
    policy.save()
    # the defaults of the graded facts stay: turning the defaults off never lets a rooted device in,
    # nor gives an unattested one full access (test_graded_attacks.py), nor a phone flagged at Apple
    # (test_devicecheck_policy_admin.py)
    assert [r.name for r in rules_for_client(client)] == [
        "screen-capture", *[r.name for r in graded_defaults()], "devicecheck-flagged", "unattested-device"]


@pytest.mark.parametrize(("condition", "parameter", "ok"), [
    ("patch_older_than", "6", True), ("patch_older_than", "six", False),
    ("integrity_below", "device", True), ("integrity_below", "platinum", False),
    ("os_version_below", "17.4", True), ("os_version_below", "latest", False),
    ("device_activity_above", "LEVEL_2", True), ("device_activity_above", "HIGH", False),
    ("screen_captured", "", True),
    ("patch_older_than", "\u00b2", False), ("receipt_risk_above", "9" * 5000, False),  # int() refuses both
    ("os_version_below", "17.\u0664", False),
])
def test_rule_parameters_are_validated(condition: str, parameter: str, ok: bool) -> None:
    from django.core.exceptions import ValidationError

    rule = HealthRule(name="r", condition=condition, parameter=parameter, outcome="reduce")
    if ok:
        rule.clean()
    else:
        with pytest.raises(ValidationError):
            rule.clean()


def test_an_unattested_rule_cannot_name_a_platform() -> None:
    """The platform of an unattested device is the app's claim: an iOS-only rule would be
    escaped by an app that says android."""
    from django.core.exceptions import ValidationError

    for platform in ("ios", "android"):
        with pytest.raises(ValidationError) as error:
            HealthRule(name="r", platform=platform, condition="unattested", outcome="deny").clean()
        assert "platform" in error.value.message_dict
    HealthRule(name="r", platform="", condition="unattested", outcome="deny").clean()
    HealthRule(name="r", platform="ios", condition="debugger_attached", outcome="deny").clean()


def test_an_unattested_rule_stored_for_one_platform_applies_on_both() -> None:
    """A per-platform ``unattested`` rule saved before the admin refused them: an app that
    claims the other platform does not escape it (the claim is all the platform is); other
    conditions keep their platform."""
    rules = [RuleSpec("ios-unattested", "unattested", "deny", platform="ios"),
             RuleSpec("ios-capture", "screen_captured", "deny", platform="ios")]
    unattested = facts(attested=False, unattested_reason="not_supported")
    for claimed in ("ios", "android"):
        assert decide(rules, unattested, claimed, NOW).outcome == HealthOutcome.DENY
    captured = facts(screen_captured=True)
    assert decide(rules, captured, "ios", NOW).outcome == HealthOutcome.DENY
    assert decide(rules, captured, "android", NOW).outcome == HealthOutcome.ALLOW


def test_the_admin_message_says_what_to_enter() -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as error:
        HealthRule(name="r", condition="patch_older_than", parameter="six", outcome="reduce").clean()
    assert "a whole number of months" in str(error.value)
