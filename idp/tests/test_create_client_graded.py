"""Issue 17 §3: ``create_client --on-...`` chooses, per graded Android fact, what it earns;
the choices are the client's health-policy rules and steer the verifiers."""

from __future__ import annotations

import base64
import hashlib
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from attestation.flows.android_devices import integrity_policy, key_policy
from attestation.grading import Refusals, refusals_for
from attestation.models import Platform, RegisteredApp
from clients.models import Client
from core.models import SecurityEvent
from device_health.models import HealthPolicy, HealthRule

pytestmark = pytest.mark.django_db

DIGEST = base64.b64encode(hashlib.sha256(b"cert").digest()).decode()
ANDROID = ["--public", "--redirect-uri", "com.example.app:/cb", "--require-attestation",
           "--android-package", "com.example.app", "--android-cert-digest", DIGEST]


def create(*args: str) -> Client:
    out = StringIO()
    call_command("create_client", "--name", "App", *args, "--json", stdout=out)
    return Client.objects.get(client_id=json.loads(out.getvalue())["client_id"])


def android_app(client: Client) -> RegisteredApp:
    return RegisteredApp.objects.get(client=client, platform=Platform.ANDROID)


def test_without_choices_no_policy_and_strict_verifiers() -> None:
    client = create(*ANDROID)
    assert not HealthPolicy.objects.filter(client=client).exists()
    assert refusals_for(android_app(client)) == Refusals()  # everything refused, below device
    policy = key_policy(android_app(client))
    assert not policy.allow_software and policy.boot_states == {"Verified"} and policy.require_locked_bootloader
    integrity = integrity_policy(android_app(client))
    assert integrity.min_level == "device" and integrity.require_play_recognized and integrity.require_licensed


def test_min_integrity_flag_is_the_default_of_the_integrity_choice() -> None:
    assert refusals_for(android_app(create(*ANDROID, "--min-integrity", "strong"))).min_integrity == "strong"


def test_each_fact_gets_its_outcome() -> None:
    client = create(*ANDROID, "--on-software-key", "reduce", "--on-unverified-boot", "reduce",
                    "--on-unlocked-bootloader", "step_up", "--on-app-not-recognized", "allow",
                    "--on-unlicensed", "deny", "--on-integrity-below", "device=reduce",
                    "--on-integrity-below", "basic=deny", "--reduced-scope", "openid", "--reduced-lifetime", "60")
    rules = {r.name: (r.condition, r.parameter, r.outcome, r.platform) for r in HealthRule.objects.all()}
    assert rules == {
        "software-key": ("software_key", "", "reduce", "android"),
        "rooted-boot": ("boot_not_verified", "", "reduce", "android"),
        "unlocked-bootloader": ("bootloader_unlocked", "", "step_up", "android"),
        "app-not-genuine": ("app_not_recognized", "", "allow", "android"),
        "app-unlicensed": ("app_unlicensed", "", "deny", "android"),
        "integrity-below-device": ("integrity_below", "device", "reduce", "android"),
        "integrity-below-basic": ("integrity_below", "basic", "deny", "android"),
    }
    policy = HealthPolicy.objects.get(client=client)
    assert policy.reduced_scopes == "openid" and policy.reduced_lifetime == 60 and policy.include_default_rules
    # only what is denied stays a verifier refusal
    assert refusals_for(android_app(client)) == Refusals(
        software_key=False, unverified_boot=False, unlocked_bootloader=False, min_integrity="basic",
        unrecognized_app=False, unlicensed=True)
    event = SecurityEvent.objects.get(event_type="device_health.policy_changed")
    assert event.client_id == client.client_id and event.details["choices"]["rooted-boot"] == "reduce"


def test_choosing_again_updates_the_rule() -> None:
    from device_health import choices

    client = create(*ANDROID, "--on-unverified-boot", "allow")
    choices.choose(client, [choices.FactChoice(choices.GradedFact.BOOT_NOT_VERIFIED, choices.HealthOutcome.DENY)])
    assert HealthRule.objects.get(name="rooted-boot").outcome == "deny"
    assert refusals_for(android_app(client)).unverified_boot is True


@pytest.mark.parametrize(("args", "message"), [
    (["--on-unverified-boot", "maybe"], "not an outcome"),
    (["--on-integrity-below", "platinum=reduce"], "LEVEL=OUTCOME"),
    (["--on-integrity-below", "device"], "LEVEL=OUTCOME"),
    (["--on-integrity-below", "device=sometimes"], "not an outcome"),
    (["--reduced-lifetime", "3600"], "1 to 300"),
])
def test_bad_choices_are_refused_and_nothing_is_created(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        create(*ANDROID, *args)
    assert Client.objects.count() == 0 and HealthRule.objects.count() == 0


def test_choices_need_the_android_app() -> None:
    with pytest.raises(CommandError, match="--android-package"):
        create("--public", "--redirect-uri", "com.example.app:/cb", "--on-unverified-boot", "reduce")
    assert Client.objects.count() == 0
