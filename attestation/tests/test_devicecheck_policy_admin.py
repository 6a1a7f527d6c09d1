"""The DeviceCheck facts and the ``devicecheck_flagged`` condition on facts alone, the admin
("revoke for abuse and flag on Apple", the app's DeviceCheck settings) and ``create_client``."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from attestation.models import Device, DeviceStatus, Platform, RegisteredApp
from attestation.testing.devicecheck_standin import DeviceCheckStandIn
from device_health.facts import collect
from device_health.models import HealthCondition, HealthOutcome, HealthPolicy, HealthRule
from device_health.rules import RuleSpec, decide, default_rules
from simulator.ios import IOSDevice

NOW = dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC)


class Stored:
    platform = "ios"

    def __init__(self, devicecheck: Any):
        self.verdict = {"environment": "production", "devicecheck": devicecheck}


def rule(param: str, outcome: str = HealthOutcome.DENY) -> RuleSpec:
    return RuleSpec("dc", HealthCondition.DEVICECHECK_FLAGGED, outcome, parameter=param)


def test_facts_from_the_stored_bits() -> None:
    facts = collect(Stored({"status": "ok", "found": True, "bit0": True, "bit1": False,
                            "last_update_time": "2026-11"}), {})
    assert facts.value("devicecheck_bit0") is True and facts.value("devicecheck_bit1") is False
    assert facts.value("devicecheck_last_update") == "2026-11" and facts.value("devicecheck_status") == "ok"
    assert facts["devicecheck_bit0"].source == "apple_devicecheck" and facts["devicecheck_bit0"].trust == "apple_service"


def test_unknown_bits_are_no_facts() -> None:
    facts = collect(Stored({"status": "unavailable"}), {})
    assert facts.value("devicecheck_status") == "unavailable" and facts.value("devicecheck_bit0") is None
    assert decide([rule("any")], facts, "ios", NOW).outcome == HealthOutcome.ALLOW
    assert "devicecheck_status" not in collect(Stored(None), {})


@pytest.mark.parametrize(("bit0", "bit1", "param", "fires"), [
    (True, False, "0", True), (True, False, "", True), (False, True, "0", False), (False, True, "1", True),
    (False, True, "any", True), (False, False, "any", False), (True, True, "any", True),
])
def test_condition_by_bit(bit0: bool, bit1: bool, param: str, fires: bool) -> None:
    facts = collect(Stored({"status": "ok", "bit0": bit0, "bit1": bit1, "last_update_time": "2026-10"}), {})
    decision = decide([rule(param)], facts, "ios", NOW)
    assert (decision.outcome == HealthOutcome.DENY) is fires
    if fires:
        assert "(last update 2026-10)" in decision.findings[0].detail


def test_default_rule_denies_bit0_on_ios(settings: Any) -> None:
    found = [r for r in default_rules() if r.condition == HealthCondition.DEVICECHECK_FLAGGED]
    assert [(r.name, r.outcome, r.parameter, r.platform) for r in found] == [("devicecheck-flagged", "deny", "0", "ios")]
    settings.ATTESTATION_DEVICECHECK_ABUSE_BIT = 1
    assert [r.parameter for r in default_rules() if r.name == "devicecheck-flagged"] == ["1"]


@pytest.mark.django_db
def test_rule_parameter_is_checked(client_factory: Any) -> None:
    policy = HealthPolicy.objects.create(client=client_factory())
    bad = HealthRule(policy=policy, name="x", condition=HealthCondition.DEVICECHECK_FLAGGED, parameter="2",
                     outcome=HealthOutcome.STEP_UP)
    with pytest.raises(ValidationError):
        bad.clean()
    HealthRule(policy=policy, name="y", condition=HealthCondition.DEVICECHECK_FLAGGED, parameter="any",
               outcome=HealthOutcome.STEP_UP).clean()


# --------------------------------------------------------------------- admin
@pytest.mark.django_db
@pytest.mark.usefixtures("allow_test_roots")
def test_admin_revokes_and_flags(admin_client: Any, client_factory: Any, devicecheck: DeviceCheckStandIn,
                                 django_capture_on_commit_callbacks: Any, settings: Any) -> None:
    from attestation.binding import RequestBinding, devicecheck_hash, grant_hash
    from attestation.flows.challenges import issue_challenge
    from attestation.flows.devices import enroll_apple_device
    from vigil.celery import app as celery_app

    oauth = client_factory("dc-admin-app")
    app = RegisteredApp.objects.create(client=oauth, platform=Platform.IOS, ios_team_id="ABCDE12345",
                                       ios_bundle_id="com.example.vigil", devicecheck_mode="optional")
    phone = IOSDevice(app.app_id, devicecheck=True)
    token = phone.devicecheck_token()
    binding = RequestBinding(issue_challenge(oauth, "enroll").value, oauth.client_id, "authorization_code",
                             grant_hash("c"), devicecheck=devicecheck_hash(token))
    device = enroll_apple_device(app, phone.attest(binding.client_data_hash()), binding, devicecheck_token=token)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse("admin:attestation_device_changelist"),
                                       {"action": "revoke_and_flag", "_selected_action": [device.pk]})
    finally:
        celery_app.conf.task_always_eager = eager
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.status == DeviceStatus.REVOKED and device.devicecheck_flagged_at is not None
    assert devicecheck.state_of(phone.physical_id)["bit0"] is True  # type: ignore[index]
    listing = admin_client.get(reverse("admin:attestation_device_changelist") + "?devicecheck_flag=flagged")
    assert listing.status_code == 200 and device.key_id[:10].encode() in listing.content
    page = admin_client.get(reverse("admin:attestation_device_change", args=[device.pk]))
    assert page.status_code == 200 and token.encode() not in page.content and b"devicecheck_token" not in page.content


@pytest.mark.django_db
def test_create_client_with_devicecheck() -> None:
    out = StringIO()
    call_command("create_client", "--name", "DC", "--public", "--client-id", "dc-cli", "--redirect-uri",
                 "com.example.vigil:/cb", "--ios-app-id", "ABCDE12345.com.example.vigil", "--require-attestation",
                 "--ios-devicecheck", "required", "--ios-devicecheck-on-failure", "fail_open", "--json", stdout=out)
    assert json.loads(out.getvalue())["client_id"] == "dc-cli"
    app = RegisteredApp.objects.get(client__client_id="dc-cli")
    assert (app.devicecheck_mode, app.devicecheck_on_failure) == ("required", "fail_open")


@pytest.mark.django_db
def test_device_token_column_is_encrypted(client_factory: Any) -> None:
    from attestation.flows.devicecheck import encrypt_token

    app = RegisteredApp.objects.create(client=client_factory(), platform=Platform.IOS, ios_team_id="ABCDE12345",
                                       ios_bundle_id="b")
    device = Device.objects.create(platform="ios", app=app, key_id="k", public_key="-", security_level="secure_enclave",
                                   devicecheck_token_encrypted=encrypt_token("dG9rZW4="))
    assert "dG9rZW4=" not in device.devicecheck_token_encrypted and device.devicecheck_token() == "dG9rZW4="


def test_system_check_refuses_plain_http_devicecheck_in_production(settings: Any) -> None:
    from attestation.checks import check_devicecheck_hosts

    settings.ATTESTATION_DEVICECHECK_BASE_URL = "http://127.0.0.1:8101"
    settings.DEBUG, settings.TESTING = False, False
    assert [e.id for e in check_devicecheck_hosts()] == ["attestation.E003"]
    settings.DEBUG = True
    assert check_devicecheck_hosts() == []
    settings.DEBUG, settings.ATTESTATION_DEVICECHECK_BASE_URL = False, "https://api.devicecheck.apple.com"
    assert check_devicecheck_hosts() == []


FLAGGED_BIT0 = {"status": "ok", "bit0": True, "bit1": False, "last_update_time": "2026-11"}


@pytest.mark.django_db
@pytest.mark.parametrize(("own", "outcome"), [
    (None, HealthOutcome.DENY),  # no rule of its own: the default still denies
    (("devicecheck_flagged", "1", "ios", HealthOutcome.ALLOW), HealthOutcome.DENY),  # another bit: no cover
    (("devicecheck_flagged", "", "android", HealthOutcome.ALLOW), HealthOutcome.DENY),  # another platform
    (("screen_captured", "", "", HealthOutcome.REDUCE), HealthOutcome.DENY),  # named like it, another fact
    (("devicecheck_flagged", "0", "ios", HealthOutcome.STEP_UP), HealthOutcome.STEP_UP),  # the client's choice
    (("devicecheck_flagged", "any", "", HealthOutcome.REDUCE), HealthOutcome.REDUCE),
])
def test_the_abuse_bit_default_stands_without_the_other_defaults(
    client_factory: Any, own: tuple[str, str, str, str] | None, outcome: str,
) -> None:
    """An operator's flag at Apple is an explicit decision: a policy with "Include default rules"
    off, or a rule that does not cover the abuse bit, must not let the flagged phone in."""
    from device_health.rules import rules_for_client

    client = client_factory()
    policy = HealthPolicy.objects.create(client=client, include_default_rules=False)
    if own is not None:
        condition, parameter, platform, chosen = own
        HealthRule.objects.create(policy=policy, name="devicecheck-flagged", condition=condition,
                                  parameter=parameter, platform=platform, outcome=chosen)
    decision = decide(rules_for_client(client), collect(Stored(FLAGGED_BIT0), {}), "ios", NOW)
    assert decision.outcome == outcome
