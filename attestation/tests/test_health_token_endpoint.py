"""Issue 7 through the real token endpoint: each default rule fired by the simulators'
attested facts (patch level, boot state, verdict levels) and by self-reported signals
carried inside the attested binding (capture flag), on both platforms."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from attestation.android.key_attestation import AndroidKeyPolicy
from attestation.binding import RequestBinding, grant_hash
from attestation.models import Device, Platform, RegisteredApp
from attestation.testing import google_pki as g
from core import jwt_tokens
from core.models import SecurityEvent
from device_health.models import DeviceHealth, HealthFinding, HealthOutcome
from idp.tests.conftest import (  # noqa: F401
    browser,
    form_post,
    get_code,
    make_pkce,
    mobile_client,
    service_client,
    user,
)
from sessions.models import DeviceSession
from simulator.android import AndroidDevice
from simulator.ios import IOSDevice

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]

APP_ID = "ABCDE12345.com.example.vigil"
HEADER = "OAuth-Client-Attestation-Challenge"
FULL = {"openid", "profile", "email", "offline_access"}


def fresh_patch() -> dict[str, Any]:
    """Leaf fields of a device patched this month (the simulator's default is October 2025)."""
    today = timezone.now()
    month = today.year * 100 + today.month
    return {"os_patch_level": month, "vendor_patch_level": month * 100 + 5, "boot_patch_level": month * 100 + 5}


class HealthApp:
    """The mobile app (as in sessions/tests/test_device_bound_tokens.py), which also reports
    signals: ``attestation_signals`` on the wire and the same object inside the binding."""

    def __init__(self, browser: Any, client_id: str, device: Any):
        self.browser, self.client_id, self.device = browser, client_id, device
        self.refresh_token = ""
        self.next_challenge = ""
        self.leaf = fresh_patch()  # Android KeyDescription overrides at enrollment

    def challenge(self, purpose: str) -> str:
        response = form_post(HttpClient(), reverse("attestation:challenge"), {"client_id": self.client_id, "purpose": purpose})
        return response.json()["attestation_challenge"]

    def _evidence(self, binding: RequestBinding, enroll: bool) -> dict[str, str]:
        if isinstance(self.device, IOSDevice):
            return self.device.enrollment_params(binding) if enroll else self.device.assertion_params(binding)
        return self.device.enrollment_params(binding, **self.leaf) if enroll else self.device.refresh_params(binding)

    def _post(self, data: dict[str, Any], signals: dict[str, Any] | None, wire_signals: Any) -> Any:
        if wire_signals is not None:
            data["attestation_signals"] = wire_signals
        elif signals:
            data["attestation_signals"] = json.dumps(signals)
        response = form_post(HttpClient(), reverse("token"), data)
        self.next_challenge = response.get(HEADER, "")  # a policy refusal carries none: ask for one
        if response.status_code == 200:
            self.refresh_token = response.json()["refresh_token"]
        return response

    def login(self, signals: dict[str, Any] | None = None, *, wire_signals: Any = None) -> Any:
        pkce = make_pkce()
        code, _ = get_code(self.browser, self.client_id, pkce)
        binding = RequestBinding(self.challenge("enroll"), self.client_id, "authorization_code", grant_hash(code),
                                 signals=signals or {})
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "com.example.app:/oauth2redirect",
                "client_id": self.client_id, "code_verifier": pkce.verifier, **self._evidence(binding, True)}
        return self._post(data, signals, wire_signals)

    def refresh(self, signals: dict[str, Any] | None = None, *, wire_signals: Any = None,
                form: dict[str, str] | None = None) -> Any:
        value = self.next_challenge or self.challenge("refresh")
        binding = RequestBinding(value, self.client_id, "refresh_token", grant_hash(self.refresh_token),
                                 signals=signals or {})
        data = {"grant_type": "refresh_token", "refresh_token": self.refresh_token, "client_id": self.client_id,
                **self._evidence(binding, False), **(form or {})}
        return self._post(data, signals, wire_signals)


def access_claims(response: Any) -> dict[str, Any]:
    return jwt_tokens.verify(response.json()["access_token"], typ="at+jwt")


@pytest.fixture
def ios_app(mobile_client: Any) -> RegisteredApp:
    team, bundle = APP_ID.split(".", 1)
    return RegisteredApp.objects.create(client=mobile_client.client, platform=Platform.IOS, ios_team_id=team,
                                        ios_bundle_id=bundle, ios_environment="production")


@pytest.fixture
def android_app(mobile_client: Any) -> RegisteredApp:
    app = RegisteredApp.objects.create(
        client=mobile_client.client, platform=Platform.ANDROID, android_package_name=g.TEST_PACKAGE,
        android_signing_cert_digests=[base64.b64encode(g.TEST_SIGNING_DIGEST).decode()],
    )
    app.set_play_integrity_keys(*(base64.b64decode(k) for k in g.play_keys_b64()))
    app.save()
    return app


@pytest.fixture
def iphone(browser: Any, mobile_client: Any, ios_app: RegisteredApp) -> HealthApp:
    return HealthApp(browser, mobile_client.client.client_id, IOSDevice(APP_ID, environment="production"))


@pytest.fixture
def pixel(browser: Any, mobile_client: Any, android_app: RegisteredApp, google: g.GoogleStandIn) -> HealthApp:
    return HealthApp(browser, mobile_client.client.client_id, AndroidDevice(google=google))


@pytest.fixture
def lenient_verifier(monkeypatch: Any) -> None:
    """A verifier that lets rooted / unlocked devices through (as a client with a lenient
    attestation policy would): the device-health rule is then what refuses them."""
    from attestation.flows import android_devices

    original = android_devices.key_policy

    def lenient(app: RegisteredApp) -> AndroidKeyPolicy:
        strict = original(app)
        return AndroidKeyPolicy(strict.package_name, strict.signing_cert_digests, strict.allow_software,
                                frozenset({"Verified", "SelfSigned", "Unverified"}), False)

    monkeypatch.setattr(android_devices, "key_policy", lenient)


def health() -> DeviceHealth:
    return DeviceHealth.objects.get()


# ------------------------------------------------------------------ allow

def test_healthy_android_device_gets_everything(pixel: HealthApp) -> None:
    response = pixel.login()
    assert response.status_code == 200, response.content
    assert set(access_claims(response)["scope"].split()) == FULL
    snapshot = health()
    assert snapshot.outcome == HealthOutcome.ALLOW and snapshot.platform == Platform.ANDROID
    assert snapshot.facts["os_patch_level"]["source"] == "android_key_attestation"
    assert snapshot.facts["os_patch_level"]["trust"] == "hardware_attested"
    assert snapshot.facts["device_recognition"] == {"value": "strong", "source": "play_integrity", "trust": "google_verdict"}
    assert snapshot.facts["sdk_version"]["value"] == 35
    assert snapshot.os_version == "15.0.0"
    assert not SecurityEvent.objects.filter(event_type="device.compliance_changed").exists()


def test_healthy_iphone_gets_everything(iphone: HealthApp) -> None:
    response = iphone.login({"os_version": "18.1", "screen_captured": False})
    assert response.status_code == 200, response.content
    assert set(response.json()["scope"].split()) == FULL
    assert health().facts["genuine_app"] == {"value": True, "source": "app_attest", "trust": "hardware_attested"}
    assert health().facts["os_version"] == {"value": "18.1", "source": "self_reported", "trust": "self_reported"}


# ------------------------------------------------------------------ reduce

def test_outdated_patch_level_gets_reduced_scopes_and_short_lifetime(pixel: HealthApp) -> None:
    pixel.leaf = {"os_patch_level": 202406}
    response = pixel.login()
    assert response.status_code == 200, response.content
    claims = access_claims(response)
    assert claims["scope"] == "openid profile" and response.json()["scope"] == "openid profile"
    assert claims["exp"] - claims["iat"] == 120 and response.json()["expires_in"] == 120
    assert claims["device_health"] == "reduced"
    assert health().deciding_rule == "outdated-patch" and health().outcome == HealthOutcome.REDUCE
    event = SecurityEvent.objects.get(event_type="device.compliance_changed")
    assert event.details["new_outcome"] == "reduce" and "os_patch_level" in event.details["facts"]
    # the refresh token keeps the granted scope; each refresh decides again
    again = pixel.refresh()
    assert again.status_code == 200 and access_claims(again)["scope"] == "openid profile"


def test_outdated_ios_version_reported_in_binding_is_reduced(iphone: HealthApp) -> None:
    response = iphone.login({"os_version": "16.7.2"})
    assert response.status_code == 200
    assert access_claims(response)["scope"] == "openid profile"
    assert health().deciding_rule == "outdated-ios"


@pytest.mark.parametrize("platform", ["ios", "android"])
def test_starting_screen_capture_restricts_at_next_refresh(platform: str, request: Any) -> None:
    app: HealthApp = request.getfixturevalue("iphone" if platform == "ios" else "pixel")
    assert set(access_claims(app.login({"os_version": "18.1"}))["scope"].split()) == FULL
    captured = app.refresh({"os_version": "18.1", "screen_captured": True})
    assert captured.status_code == 200, captured.content
    assert access_claims(captured)["scope"] == "openid profile"
    assert health().deciding_rule == "screen-capture"
    assert health().facts["screen_captured"]["trust"] == "self_reported"
    stopped = app.refresh({"os_version": "18.1", "screen_captured": False})
    assert set(access_claims(stopped)["scope"].split()) == FULL
    changes = SecurityEvent.objects.filter(event_type="device.compliance_changed").order_by("pk")
    assert [e.details["new_outcome"] for e in changes] == ["reduce", "allow"]
    assert changes[0].details["facts"]["screen_captured"]["value"] is True
    assert changes[1].details["facts"]["screen_captured"]["value"] is False  # what made it recover


def test_mirrored_screen_is_restricted(iphone: HealthApp) -> None:
    response = iphone.login({"os_version": "18.1", "screen_mirrored": True})
    assert access_claims(response)["scope"] == "openid profile"


def test_capturing_apps_detected_by_play_integrity_are_restricted(pixel: HealthApp, google: g.GoogleStandIn) -> None:
    class CapturedAndroid(AndroidDevice):
        def verdict(self, binding: RequestBinding, **kw: Any) -> dict[str, Any]:
            verdict = super().verdict(binding, **kw)
            verdict["environmentDetails"]["appAccessRiskVerdict"] = {"appsDetected": ["KNOWN_INSTALLED", "UNKNOWN_CAPTURING"]}
            return verdict

    pixel.device = CapturedAndroid(google=google)
    response = pixel.login()
    assert access_claims(response)["scope"] == "openid profile"
    assert health().deciding_rule == "capturing-apps"


# ------------------------------------------------------------------ deny

@pytest.mark.usefixtures("lenient_verifier")
@pytest.mark.parametrize(("leaf", "rule"), [
    ({"verified_boot_state": "Unverified"}, "rooted-boot"),
    ({"device_locked": False}, "unlocked-bootloader"),
])
def test_rooted_or_unlocked_android_is_denied(pixel: HealthApp, leaf: dict[str, Any], rule: str) -> None:
    pixel.leaf = {**fresh_patch(), **leaf}
    response = pixel.login()
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert f"rule {rule}" in response.json()["error_description"]
    assert DeviceSession.objects.count() == 0  # nothing was issued
    snapshot = health()  # ... but the decision was stored after the rollback
    assert snapshot.outcome == HealthOutcome.DENY and snapshot.deciding_rule == rule
    assert HealthFinding.objects.filter(rule=rule, platform="android").exists()
    event = SecurityEvent.objects.get(event_type="device.compliance_changed")
    assert event.outcome == "denied" and event.reason == rule


def test_rooted_android_is_refused_by_the_strict_verifier_first(pixel: HealthApp) -> None:
    pixel.leaf = {**fresh_patch(), "verified_boot_state": "Unverified"}
    response = pixel.login()
    assert response.json()["error"] == "invalid_client_attestation"
    assert "boot_state_unverified" in response.json()["error_description"]


def test_failed_integrity_verdict_is_refused_by_the_verifier_first(pixel: HealthApp) -> None:
    assert pixel.login().status_code == 200
    pixel.device.device_verdicts = ("MEETS_VIRTUAL_INTEGRITY",)
    response = pixel.refresh()
    assert response.json()["error"] == "invalid_client_attestation"
    assert "integrity_verdict_insufficient" in response.json()["error_description"]


def refresh_on_stored_verdict(pixel: HealthApp, android_app: RegisteredApp, **changes: Any) -> Any:
    """Refresh with the key signature only, so the stored Play Integrity verdict (edited with
    ``changes``) is what the health policy judges: the second line behind the verifier."""
    device = Device.objects.get()
    device.verdict = {**device.verdict, "play_integrity": {**device.verdict["play_integrity"], **changes}}
    device.save()
    android_app.play_integrity_max_age_minutes = 10
    android_app.save()
    binding = RequestBinding(pixel.challenge("refresh"), pixel.client_id, "refresh_token", grant_hash(pixel.refresh_token))
    return form_post(HttpClient(), reverse("token"), {
        "grant_type": "refresh_token", "refresh_token": pixel.refresh_token, "client_id": pixel.client_id,
        **pixel.device.refresh_params(binding, integrity=None)})


@pytest.mark.parametrize("verdicts", [[], ["MEETS_VIRTUAL_INTEGRITY"]])
def test_failed_integrity_verdict_is_denied(pixel: HealthApp, android_app: RegisteredApp, verdicts: list[str]) -> None:
    assert pixel.login().status_code == 200
    response = refresh_on_stored_verdict(pixel, android_app, device_recognition_verdict=verdicts)
    assert response.json()["error"] == "invalid_grant"
    assert "rule integrity-failed" in response.json()["error_description"]
    assert health().outcome == HealthOutcome.DENY


def test_integrity_level_deny_rule_is_enforced_by_the_verifier(pixel: HealthApp, android_app: RegisteredApp,
                                                              mobile_client: Any) -> None:
    """The client's own rule on the graded fact replaces the app's min_integrity_level (basic):
    its deny makes the verifier refuse below device, before anything is stored."""
    from device_health.models import HealthPolicy, HealthRule

    android_app.min_integrity_level = "basic"
    android_app.save()
    policy = HealthPolicy.objects.create(client=mobile_client.client)
    HealthRule.objects.create(policy=policy, name="needs-device-integrity", condition="integrity_below",
                              parameter="device", outcome=HealthOutcome.DENY, user_message="Use a certified device.")
    pixel.device.device_verdicts = ("MEETS_BASIC_INTEGRITY",)
    response = pixel.login()
    assert response.json()["error"] == "invalid_client_attestation"
    assert "integrity_verdict_insufficient" in response.json()["error_description"]
    assert DeviceSession.objects.count() == 0 and Device.objects.count() == 0
    pixel.device.device_verdicts = ("MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY")
    assert pixel.login().status_code == 200  # the same device, once Google recognises it
    assert health().outcome == HealthOutcome.ALLOW


def test_unrecognised_app_is_denied(pixel: HealthApp, android_app: RegisteredApp) -> None:
    """The verifier refuses UNRECOGNIZED_VERSION itself; the health rule is the second line."""
    assert pixel.login().status_code == 200
    response = refresh_on_stored_verdict(pixel, android_app, app_recognition_verdict="UNRECOGNIZED_VERSION")
    assert response.json()["error"] == "invalid_grant" and "app-not-genuine" in response.json()["error_description"]


# ------------------------------------------------------------------ shared signals

def test_compliance_change_is_a_shared_signal_for_registered_receivers(pixel: HealthApp) -> None:
    from shared_signals.models import CaepEvent, SetDelivery, SsfReceiver

    SsfReceiver.objects.create(name="RP", audience="https://rp.example.com/caep", endpoint_url="https://rp.example.com/ssf")
    assert pixel.login({"screen_captured": True}).status_code == 200
    delivery = SetDelivery.objects.get(event_type=CaepEvent.DEVICE_COMPLIANCE_CHANGE)
    event = delivery.claims["events"][CaepEvent.DEVICE_COMPLIANCE_CHANGE]
    assert event["previous_status"] == "compliant" and event["current_status"] == "not-compliant"
    assert delivery.claims["sub_id"]["device"]["id"] == Device.objects.get().key_id
    assert pixel.refresh({"screen_captured": True}).status_code == 200  # unchanged: no second signal
    assert SetDelivery.objects.filter(event_type=CaepEvent.DEVICE_COMPLIANCE_CHANGE).count() == 1


def test_no_receivers_no_signal_but_still_a_security_event(pixel: HealthApp) -> None:
    from shared_signals.models import SetDelivery

    assert pixel.login({"screen_captured": True}).status_code == 200
    assert SetDelivery.objects.count() == 0
    assert SecurityEvent.objects.filter(event_type="device.compliance_changed").count() == 1


# ------------------------------------------------------------------ self-reported signals are bound

@pytest.mark.parametrize("platform", ["ios", "android"])
def test_signals_outside_the_attested_binding_fail_attestation(platform: str, request: Any) -> None:
    """Someone on the path strips the capture flag: the binding no longer matches."""
    app: HealthApp = request.getfixturevalue("iphone" if platform == "ios" else "pixel")
    assert app.login().status_code == 200
    stripped = app.refresh({"screen_captured": True}, wire_signals=json.dumps({"screen_captured": False}))
    assert stripped.status_code == 400 and stripped.json()["error"] == "invalid_client_attestation"
    app.next_challenge = ""
    added = app.refresh(None, wire_signals=json.dumps({"os_version": "99.0"}))  # not attested at all
    assert added.json()["error"] == "invalid_client_attestation"


def test_a_flag_in_another_parameter_has_no_effect(iphone: HealthApp) -> None:
    assert iphone.login({"os_version": "18.1"}).status_code == 200
    response = iphone.refresh({"os_version": "18.1"},
                              form={"screen_captured": "true", "signals": '{"screen_captured": true}'})
    assert response.status_code == 200 and set(access_claims(response)["scope"].split()) == FULL
    assert "screen_captured" not in health().facts


def test_unknown_or_mistyped_signals_are_ignored(iphone: HealthApp) -> None:
    response = iphone.login({"os_version": "18.1", "screen_captured": "yes", "jailbroken": False})
    assert response.status_code == 200 and set(access_claims(response)["scope"].split()) == FULL
    assert health().signals == {"os_version": "18.1"}


@pytest.mark.parametrize("wire", ['{"os_version": "18.1\\u0000"}', '{"os_version": "\\ud800"}'],
                         ids=["nul", "lone-surrogate"])
def test_a_signal_that_is_not_text_is_ignored(iphone: HealthApp, wire: str) -> None:
    """PostgreSQL's jsonb refuses a NUL and UTF-8 cannot carry a lone surrogate: such an
    ``os_version`` is not a version, and is ignored like any mistyped signal (not a 500 after
    the attestation was verified and its challenge spent)."""
    response = iphone.login(json.loads(wire), wire_signals=wire)
    assert response.status_code == 200 and set(access_claims(response)["scope"].split()) == FULL
    assert health().signals == {}


def test_self_reported_signals_cannot_lift_an_attested_restriction(pixel: HealthApp) -> None:
    pixel.leaf = {"os_patch_level": 202301}
    response = pixel.login({"os_version": "99.0", "screen_captured": False})
    assert access_claims(response)["scope"] == "openid profile"
    facts = health().facts
    assert facts["os_version"]["source"] == "android_key_attestation"
    assert facts["reported_os_version"] == {"value": "99.0", "source": "self_reported", "trust": "self_reported"}


# ------------------------------------------------------------------ userinfo and introspection

def test_reduced_token_is_refused_beyond_its_scopes(pixel: HealthApp) -> None:
    pixel.leaf = {"os_patch_level": 202301}
    token = pixel.login().json()["access_token"]
    info = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert info.status_code == 200 and "email" not in info.json() and info.json()["preferred_username"] == "alice"


def test_introspection_shows_only_the_narrowed_scopes(pixel: HealthApp, service_client: Any) -> None:
    from idp.tests.test_token import basic

    pixel.leaf = {"os_patch_level": 202301}
    token = pixel.login().json()["access_token"]
    body = form_post(HttpClient(), reverse("introspect"), {"token": token},
                     HTTP_AUTHORIZATION=basic(service_client.client.client_id, service_client.secret)).json()
    assert body["active"] is True and body["scope"] == "openid profile"


def test_denied_device_tokens_are_refused_at_userinfo_and_inactive_at_introspection(
    iphone: HealthApp, mobile_client: Any, service_client: Any
) -> None:
    from device_health import tasks
    from device_health.models import HealthPolicy, HealthRule
    from idp.tests.test_token import basic

    token = iphone.login({"os_version": "18.1", "debugger_attached": True}).json()["access_token"]
    policy = HealthPolicy.objects.create(client=mobile_client.client)
    HealthRule.objects.create(policy=policy, name="no-debugger", condition="debugger_attached", outcome="deny")
    tasks.revalidate_devices()
    assert HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    body = form_post(HttpClient(), reverse("introspect"), {"token": token},
                     HTTP_AUTHORIZATION=basic(service_client.client.client_id, service_client.secret)).json()
    assert body == {"active": False}


def test_token_of_a_device_restricted_since_is_refused_at_userinfo(iphone: HealthApp) -> None:
    token = iphone.login({"os_version": "18.1"}).json()["access_token"]
    assert HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert iphone.refresh({"os_version": "18.1", "screen_captured": True}).status_code == 200
    refused = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"


def test_reduced_token_without_openid_is_refused_at_userinfo(iphone: HealthApp, mobile_client: Any) -> None:
    from device_health.models import HealthPolicy, HealthRule

    policy = HealthPolicy.objects.create(client=mobile_client.client)
    HealthRule.objects.create(policy=policy, name="capture-api-only", condition="screen_captured", outcome="reduce",
                              scopes="profile", access_token_lifetime=60)
    response = iphone.login({"screen_captured": True})
    claims = access_claims(response)
    assert claims["scope"] == "profile" and claims["exp"] - claims["iat"] == 60
    info = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
    assert info.status_code == 403 and info.json()["error"] == "insufficient_scope"


# ------------------------------------------------------------------ step-up

def test_step_up_rule_passes_a_fresh_login_and_refuses_the_refresh(iphone: HealthApp, mobile_client: Any) -> None:
    from device_health.models import HealthPolicy, HealthRule

    policy = HealthPolicy.objects.create(client=mobile_client.client)
    HealthRule.objects.create(policy=policy, name="debugger-step-up", condition="debugger_attached", outcome="step_up",
                              user_message="Detach the debugger and sign in again.")
    signals = {"os_version": "18.1", "debugger_attached": True}
    assert iphone.login(signals).status_code == 200  # the user has just authenticated
    assert health().outcome == HealthOutcome.STEP_UP
    response = iphone.refresh(signals)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert response.json()["error_description"].startswith("Step-up required by the device health policy")
    assert DeviceSession.objects.get().status == "active"  # refused without loss
    assert iphone.refresh({"os_version": "18.1"}).status_code == 200  # debugger gone: back to normal


@pytest.mark.parametrize(("section", "value", "condition", "parameter"), [
    ("playProtectVerdict", "HIGH_RISK", "play_protect_risk", ""),
    ("recentDeviceActivity", {"deviceActivityLevel": "LEVEL_4"}, "device_activity_above", "LEVEL_3"),
])
def test_play_integrity_environment_rules(pixel: HealthApp, google: g.GoogleStandIn, mobile_client: Any,
                                          section: str, value: Any, condition: str, parameter: str) -> None:
    from device_health.models import HealthPolicy, HealthRule

    class RiskyAndroid(AndroidDevice):
        def verdict(self, binding: RequestBinding, **kw: Any) -> dict[str, Any]:
            verdict = super().verdict(binding, **kw)
            target = verdict["environmentDetails"] if section == "playProtectVerdict" else verdict["deviceIntegrity"]
            target[section] = value
            return verdict

    policy = HealthPolicy.objects.create(client=mobile_client.client)
    HealthRule.objects.create(policy=policy, name="risky", condition=condition, parameter=parameter, outcome="reduce",
                              scopes="openid", access_token_lifetime=30)
    assert set(access_claims(pixel.login())["scope"].split()) == FULL
    pixel.device = RiskyAndroid(key=pixel.device.key, google=google)
    response = pixel.refresh()
    claims = access_claims(response)
    assert claims["scope"] == "openid" and claims["exp"] - claims["iat"] == 30
    assert health().deciding_rule == "risky"


def test_policy_query_budget_on_an_unchanged_refresh(iphone: HealthApp, mobile_client: Any,
                                                     django_assert_num_queries: Any) -> None:
    """What device health adds to an unchanged refresh: nothing, once the client's rules are
    cached and the snapshot comes with the session's device (issue 8)."""
    from core.policy import TokenContext
    from device_health.policy import token_policy

    assert iphone.login({"os_version": "18.1"}).status_code == 200
    assert iphone.refresh({"os_version": "18.1"}).status_code == 200  # rules cached after the first key's creation
    session = DeviceSession.objects.select_related("device__health").get()
    context = TokenContext(grant_type="refresh_token", client=mobile_client.client, user=session.user, session=session,
                           scope="openid", now=timezone.now(), request=None, device=session.device,
                           device_signals={"os_version": "18.1"})
    with django_assert_num_queries(0):
        assert token_policy(context) is None
