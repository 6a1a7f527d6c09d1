"""Issue 17 part 2: the fallback for devices that cannot attest (docs/unattested-devices.md).

Off by default (refused exactly as before); when on, the device enrolls with its DPoP key,
gets reduced access marked ``device_attested: false`` everywhere, is offered attestation at
every refresh and upgrades by attesting; its refreshes are rate-limited and its location
signals judged more strictly. Negative tests assert the error and that nothing changed."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import jwt
import pytest
from django.conf import settings as django_settings
from django.test import Client as HttpClient
from django.urls import reverse
from joserfc.jwk import ECKey

from attestation.binding import RequestBinding, grant_hash
from attestation.flows import challenges
from attestation.models import Device, Platform, RegisteredApp, SecurityLevel
from core.models import SecurityEvent
from device_health.models import DeviceHealth, HealthOutcome, HealthPolicy, HealthRule
from idp.tests.conftest import form_post, get_code, make_pkce
from sessions.dpop.client import create_proof
from sessions.models import DeviceSession, RefreshToken, SessionStatus
from simulator.ios import IOSDevice

from .test_device_bound_tokens import (  # the fixtures are used by name
    APP_ID,
    HEADER,
    App,
    android_app,  # noqa: F401
    challenge,
    ios_app,  # noqa: F401
    iphone,  # noqa: F401
    token_post,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]


class Unattested(App):
    """An app on a device that cannot attest: ``attestation_type=none`` with its DPoP key; it
    may attest later (``device``: the App Attest simulator it upgrades with)."""

    def __init__(self, *args: Any, platform: str = "ios", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.platform = platform
        self.claim = {"attestation_type": "none", "attestation_platform": platform,
                      "attestation_unavailable_reason": "not_supported"}
        self.attested = False
        self.body: dict[str, Any] = {}
        self.address: dict[str, str] = {}  # e.g. {"REMOTE_ADDR": risk.testing.PARIS}

    def headers(self) -> dict[str, str]:
        return {**super().headers(), **self.address}

    def evidence(self, binding: RequestBinding, purpose: str) -> dict[str, str]:
        if purpose == "enroll":
            return {**self.claim, "attestation_challenge": binding.challenge}
        if self.attested:
            return super().evidence(binding, "refresh")
        return {}

    def refresh(self, **kwargs: Any) -> Any:
        response = super().refresh(**kwargs)
        if response.status_code == 200:
            self.body = response.json()
        return response

    def upgrade(self, **forge: Any) -> Any:
        """Attest a new key over the refresh binding, with the ``enroll`` challenge just offered."""
        binding = RequestBinding(self.next_challenge, self.client_id, "refresh_token",
                                 grant_hash(forge.pop("bound_secret", None) or self.refresh_token),
                                 dpop_jkt=self.jkt())
        response = self.refresh(evidence=self.device.enrollment_params(binding, **forge))
        if response.status_code == 200:
            self.attested = True
        return response


def purpose_of(value: str) -> str:
    """The purpose a challenge was issued for (verified like the server does)."""
    return challenges._verified_claims(value).purpose


def enable_fallback(app: RegisteredApp) -> RegisteredApp:
    app.allow_unattested_devices = True
    app.save()
    return app


@pytest.fixture
def old_iphone(browser: Any, mobile_client: Any, ios_app: RegisteredApp) -> Unattested:
    enable_fallback(ios_app)
    return Unattested(browser, mobile_client.client.client_id, IOSDevice(APP_ID, environment="production"),
                      ECKey.generate_key("P-256", private=True))


def access_claims(response: Any) -> dict[str, Any]:
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


def events(kind: str) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(event_type=kind).order_by("pk"))


# --- off by default ------------------------------------------------------------------------------
def test_off_by_default_refused_exactly_as_before_and_nothing_stored(browser: Any, mobile_client: Any,
                                                                     ios_app: RegisteredApp) -> None:
    assert ios_app.allow_unattested_devices is False
    app = Unattested(browser, mobile_client.client.client_id, IOSDevice(APP_ID), ECKey.generate_key("P-256"))
    response = app.login()
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_client_attestation"
    assert body["error_description"] == "Device attestation failed: unsupported_format."
    assert purpose_of(response[HEADER]) == "enroll"
    assert not Device.objects.exists() and not DeviceSession.objects.exists() and not RefreshToken.objects.exists()
    refused = events("attestation.token_refused")[-1]
    assert refused.reason == "unsupported_format"


def test_fallback_on_one_platform_does_not_open_the_other(browser: Any, mobile_client: Any, ios_app: RegisteredApp,
                                                          android_app: RegisteredApp) -> None:
    enable_fallback(ios_app)
    app = Unattested(browser, mobile_client.client.client_id, IOSDevice(APP_ID), ECKey.generate_key("P-256"),
                     platform="android")
    response = app.login()
    assert response.status_code == 400 and response.json()["error_description"].endswith("unsupported_format.")
    assert not Device.objects.exists() and not DeviceSession.objects.exists()


def test_client_without_registered_apps_refuses_none_as_before(browser: Any, mobile_client: Any) -> None:
    app = Unattested(browser, mobile_client.client.client_id, IOSDevice(APP_ID), ECKey.generate_key("P-256"))
    response = app.login()
    assert response.status_code == 400 and response.json()["error"] == "invalid_client_attestation"
    assert not DeviceSession.objects.exists()


# --- enrollment ----------------------------------------------------------------------------------
def test_unattested_enrollment_gives_reduced_marked_dpop_bound_tokens(old_iphone: Unattested,
                                                                      service_client: Any) -> None:
    from idp.tests.test_introspection_revocation_userinfo import introspect

    response = old_iphone.login()
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["device_attested"] is False and body["token_type"] == "DPoP"
    assert purpose_of(response[HEADER]) == "enroll"  # attestation offered at once
    claims = access_claims(response)
    assert claims["device_attested"] is False and claims["device_health"] == "reduced"
    assert claims["scope"] == "openid profile" and claims["exp"] - claims["iat"] <= 120
    assert claims["cnf"] == {"jkt": old_iphone.jkt()}
    session = DeviceSession.objects.select_related("device").get()
    device = session.device
    assert device is not None and device.attested is False and device.security_level == SecurityLevel.NONE
    assert device.key_id == old_iphone.jkt() == session.dpop_jkt and device.platform == Platform.IOS
    assert device.verdict == {"unattested": {"reason": "not_supported"}}
    assert "BEGIN PUBLIC KEY" in device.public_key
    assert list(Device.objects.unattested()) == [device] and not Device.objects.attested().exists()
    health = DeviceHealth.objects.get(device=device)
    assert health.outcome == HealthOutcome.REDUCE and health.deciding_rule == "unattested-device"
    assert DeviceHealth.objects.filter(device__attested=False).count() == 1
    enrolled = events("attestation.enroll")[-1]
    assert enrolled.outcome == "success" and enrolled.details["attested"] is False
    introspected = introspect(service_client, body["access_token"]).json()
    assert introspected["active"] is True and introspected["device_attested"] is False
    assert introspected["device_health"] == "reduced"


def test_userinfo_respects_the_reduction(old_iphone: Unattested) -> None:
    response = old_iphone.login()
    access = response.json()["access_token"]
    url = f"{django_settings.IDP_ISSUER}/userinfo"
    assert old_iphone.dpop is not None
    proof = create_proof(old_iphone.dpop, method="GET", url=url, access_token=access)
    info = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"DPoP {access}", HTTP_DPOP=proof)
    assert info.status_code == 200, info.content
    assert "email" not in info.json()  # the reduced token lacks the email scope


@pytest.mark.parametrize("form", [
    {"attestation_platform": "windows"},
    {"attestation_unavailable_reason": "because"},
    {"attestation_platform": ""},
])
def test_malformed_fallback_parameters_are_refused(old_iphone: Unattested, form: dict[str, str]) -> None:
    old_iphone.claim.update(form)
    response = old_iphone.login()
    assert response.status_code == 400
    if form.get("attestation_platform") in {"windows", ""}:  # no app of that platform: as before
        assert response.json()["error_description"].endswith("unsupported_format.")
    else:
        assert response.json()["error_description"].endswith("unattested_parameters_invalid.")
    assert not Device.objects.exists() and not DeviceSession.objects.exists()


def test_enrollment_without_a_dpop_proof_is_refused(old_iphone: Unattested) -> None:
    old_iphone.dpop = None
    response = old_iphone.login()
    assert response.status_code == 400
    assert response.json()["error_description"].endswith("unattested_dpop_required.")
    assert not Device.objects.exists() and not DeviceSession.objects.exists()


def _exchange(app: Unattested, value: str) -> Any:
    pkce = make_pkce()
    code, _ = get_code(app.browser, app.client_id, pkce)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "com.example.app:/oauth2redirect",
            "client_id": app.client_id, "code_verifier": pkce.verifier, **app.claim, "attestation_challenge": value}
    return token_post(data, **app.headers())


def test_enrollment_claims_its_challenge_once(old_iphone: Unattested) -> None:
    value = challenge(old_iphone.client_id, "enroll")
    assert _exchange(old_iphone, value).status_code == 200
    replay = _exchange(old_iphone, value)
    assert replay.status_code == 400 and replay.json()["error"] == "use_attestation_challenge"
    assert DeviceSession.objects.count() == 1  # the replay started nothing
    missing = _exchange(old_iphone, "")
    assert missing.status_code == 400 and missing.json()["error"] == "use_attestation_challenge"
    refresh_purpose = _exchange(old_iphone, challenge(old_iphone.client_id, "refresh"))
    assert refresh_purpose.status_code == 400 and refresh_purpose.json()["error"] == "use_attestation_challenge"
    assert DeviceSession.objects.count() == 1 and Device.objects.count() == 1


# --- refresh ---------------------------------------------------------------------------------------
def test_refresh_needs_only_the_dpop_key_and_offers_attestation(old_iphone: Unattested) -> None:
    assert old_iphone.login().status_code == 200
    for _ in range(3):
        response = old_iphone.refresh()
        assert response.status_code == 200, response.content
        assert response.json()["device_attested"] is False
        assert access_claims(response)["device_attested"] is False
        assert purpose_of(response[HEADER]) == "enroll"
    assert events("oauth.token_refreshed")


def test_dpop_key_swap_is_refused_and_changes_nothing(old_iphone: Unattested) -> None:
    old_iphone.login()
    token = old_iphone.refresh_token
    old_iphone.dpop = ECKey.generate_key("P-256", private=True)
    response = old_iphone.refresh()
    assert response.status_code == 400 and response.json()["error"] == "invalid_dpop_proof"
    stored = RefreshToken.objects.get(token_hash__isnull=False, rotated_at__isnull=True)
    assert stored.session.status == SessionStatus.ACTIVE and old_iphone.refresh_token == token


def test_refresh_without_dpop_proof_is_refused(old_iphone: Unattested) -> None:
    old_iphone.login()
    key, old_iphone.dpop = old_iphone.dpop, None
    response = old_iphone.refresh()
    assert response.status_code == 400 and response.json()["error"] == "invalid_dpop_proof"
    old_iphone.dpop = key
    assert old_iphone.refresh().status_code == 200  # the refused refresh changed nothing


def test_another_clients_unattested_token_is_refused(old_iphone: Unattested, service_client: Any) -> None:
    from idp.tests.test_token import basic

    old_iphone.login()
    response = form_post(HttpClient(), reverse("token"),
                         {"grant_type": "refresh_token", "refresh_token": old_iphone.refresh_token},
                         HTTP_AUTHORIZATION=basic(service_client.client.client_id, service_client.secret),
                         HTTP_DPOP=old_iphone.headers()["HTTP_DPOP"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert old_iphone.refresh().status_code == 200


def test_replayed_refresh_token_revokes_the_family(old_iphone: Unattested, time_machine: Any) -> None:
    time_machine.move_to(dt.datetime.now(tz=dt.UTC), tick=False)
    old_iphone.login()
    first = old_iphone.refresh_token
    assert old_iphone.refresh().status_code == 200
    time_machine.shift(dt.timedelta(seconds=31))  # outside the 30 s window (no device-bound extension for unattested)
    old_iphone.refresh_token = first
    replay = old_iphone.refresh()
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_lost_response_retry_gets_the_same_successor(old_iphone: Unattested) -> None:
    old_iphone.login()
    presented = old_iphone.refresh_token
    first = old_iphone.refresh()
    old_iphone.refresh_token = presented  # the answer was lost: present the same token again
    retried = old_iphone.refresh()
    assert retried.status_code == 200, retried.content
    assert retried.json()["refresh_token"] == first.json()["refresh_token"]
    assert retried.json()["device_attested"] is False
    assert events("oauth.refresh_retried")


def test_refreshes_are_rate_limited(old_iphone: Unattested, settings: Any) -> None:
    settings.SESSIONS_UNATTESTED_REFRESH_LIMIT = 2
    old_iphone.login()
    assert old_iphone.refresh().status_code == 200
    assert old_iphone.refresh().status_code == 200
    token = old_iphone.refresh_token
    refused = old_iphone.refresh()
    assert refused.status_code == 429 and refused.json()["error"] == "slow_down"
    assert 0 < int(refused["Retry-After"]) <= 2 * 3600  # a sliding window: into the next one at most
    assert old_iphone.refresh_token == token
    assert RefreshToken.objects.filter(rotated_at__isnull=True, revoked_at__isnull=True).count() == 1
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert events("oauth.refresh_refused")[-1].reason == "unattested_rate_limited"


def test_a_refresh_failed_by_an_outage_spends_none_of_the_rate(old_iphone: Unattested, settings: Any) -> None:
    """The count is in the shared cache, which the failed refresh's rollback does not reach:
    the outage's 503 takes it back (``core.outage_undo``), so the retry is served."""
    from django.db import OperationalError, connection

    settings.SESSIONS_UNATTESTED_REFRESH_LIMIT = 1
    old_iphone.login()
    token = old_iphone.refresh_token

    def rotation_fails(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith(("UPDATE", "WITH", "INSERT")):
            raise OperationalError("injected: server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(rotation_fails):
        failed = old_iphone.refresh()
    assert failed.status_code == 503 and failed.json()["error"] == "temporarily_unavailable"
    assert old_iphone.refresh_token == token
    assert old_iphone.refresh().status_code == 200  # the retry: the rate's one refresh
    refused = old_iphone.refresh()
    assert refused.status_code == 429 and refused.json()["error"] == "slow_down"


def test_attested_sessions_are_not_rate_limited(iphone: App, settings: Any) -> None:
    settings.SESSIONS_UNATTESTED_REFRESH_LIMIT = 1
    iphone.login()
    for _ in range(3):
        assert iphone.refresh().status_code == 200


# --- the health policy decides ---------------------------------------------------------------------
def _policy(mobile_client: Any, outcome: str) -> None:
    policy = HealthPolicy.objects.create(client=mobile_client.client)
    HealthRule.objects.create(policy=policy, name="unattested-device", condition="unattested", outcome=outcome)


def test_policy_deny_refuses_unattested_devices(old_iphone: Unattested, mobile_client: Any) -> None:
    _policy(mobile_client, HealthOutcome.DENY)
    response = old_iphone.login()
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert "unattested-device" in response.json()["error_description"]
    assert not DeviceSession.objects.exists() and not RefreshToken.objects.exists()
    assert DeviceHealth.objects.get().outcome == HealthOutcome.DENY


def test_policy_step_up_allows_a_fresh_login_then_asks_again(old_iphone: Unattested, mobile_client: Any,
                                                             time_machine: Any) -> None:
    time_machine.move_to(dt.datetime.now(tz=dt.UTC), tick=False)
    _policy(mobile_client, HealthOutcome.STEP_UP)
    assert old_iphone.login().status_code == 200  # authenticated just now: satisfied
    time_machine.shift(dt.timedelta(seconds=400))
    response = old_iphone.refresh()
    assert response.status_code == 400 and "Step-up" in response.json()["error_description"]


def test_policy_allow_gives_full_scopes_still_marked(old_iphone: Unattested, mobile_client: Any) -> None:
    _policy(mobile_client, HealthOutcome.ALLOW)
    response = old_iphone.login()
    claims = access_claims(response)
    assert claims["device_attested"] is False and "device_health" not in claims
    assert "email" in claims["scope"].split()


# --- the upgrade -------------------------------------------------------------------------------------
def test_a_refresh_with_attestation_upgrades_the_session(old_iphone: Unattested, service_client: Any) -> None:
    old_iphone.login()
    unattested = Device.objects.get()
    response = old_iphone.upgrade()
    assert response.status_code == 200, response.content
    body = response.json()
    assert "device_attested" not in body
    claims = access_claims(response)
    assert "device_attested" not in claims and "device_health" not in claims and "email" in claims["scope"]
    assert purpose_of(response[HEADER]) == "refresh"
    session = DeviceSession.objects.select_related("device").get()
    assert getattr(session.device, "attested", None) is True and session.device_id != unattested.pk
    assert session.dpop_jkt == old_iphone.jkt()
    upgraded = events("attestation.session_upgraded")
    assert len(upgraded) == 1 and upgraded[0].details["unattested_device"] == unattested.pk
    # from now on it is an attested session: every refresh asserts with the new key
    assert old_iphone.refresh().status_code == 200
    bare = old_iphone.refresh(evidence={})
    assert bare.status_code == 400 and bare.json()["error"] == "use_attestation_challenge"


def test_an_attested_session_cannot_go_back_to_unattested(old_iphone: Unattested) -> None:
    old_iphone.login()
    assert old_iphone.upgrade().status_code == 200
    downgrade = old_iphone.refresh(evidence={**old_iphone.claim, "attestation_challenge": old_iphone.next_challenge})
    assert downgrade.status_code == 400 and downgrade.json()["error"] == "invalid_client_attestation"
    assert downgrade.json()["error_description"].endswith("unattested_not_allowed.")
    assert getattr(DeviceSession.objects.get().device, "attested", None) is True
    assert old_iphone.refresh().status_code == 200


def test_attested_enrollment_session_refuses_none(iphone: App) -> None:
    iphone.login()
    response = iphone.refresh(evidence={"attestation_type": "none", "attestation_platform": "ios",
                                        "attestation_unavailable_reason": "not_supported",
                                        "attestation_challenge": iphone.next_challenge})
    assert response.status_code == 400 and response.json()["error"] == "invalid_client_attestation"
    assert not Device.objects.unattested().exists()


def test_invalid_upgrade_evidence_is_refused_and_counts_as_a_failure(old_iphone: Unattested, settings: Any) -> None:
    old_iphone.login()
    token = old_iphone.refresh_token
    bad = old_iphone.upgrade(bound_secret="another refresh token")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client_attestation"
    assert purpose_of(bad[HEADER]) == "enroll"
    session = DeviceSession.objects.select_related("device").get()
    assert getattr(session.device, "attested", None) is False and session.status == SessionStatus.ACTIVE
    assert old_iphone.refresh_token == token and Device.objects.count() == 1
    assert old_iphone.refresh().status_code == 200  # still works unattested
    refused = old_iphone.upgrade(bound_secret="x")  # the second failure
    assert refused.json()["error"] == "invalid_client_attestation"
    old_iphone.next_challenge = refused[HEADER]  # the fresh one it carried (a reused challenge counts nothing)
    final = old_iphone.upgrade(bound_secret="z")  # the third: SESSIONS_ATTESTATION_MAX_FAILURES
    assert final.status_code == 400 and final.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_an_assertion_on_an_unattested_session_asks_for_an_enrollment(old_iphone: Unattested) -> None:
    old_iphone.login()
    binding = RequestBinding(challenge(old_iphone.client_id, "refresh"), old_iphone.client_id, "refresh_token",
                             grant_hash(old_iphone.refresh_token), dpop_jkt=old_iphone.jkt())
    response = old_iphone.refresh(evidence=old_iphone.device.assertion_params(binding))
    assert response.status_code == 400 and response.json()["error"] == "use_attestation_challenge"
    assert purpose_of(response[HEADER]) == "enroll"
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE


def test_upgrading_with_another_platform_revokes(old_iphone: Unattested, android_app: RegisteredApp,
                                                 google: Any) -> None:
    from simulator.android import AndroidDevice

    old_iphone.login()
    old_iphone.device = AndroidDevice(google=google)
    response = old_iphone.upgrade()
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_unattested_refresh_query_budget(old_iphone: Unattested) -> None:
    """The unattested refresh: the lookup and the one-statement rotation (the rate counter is
    in the cache), like the attested one minus the App Attest counter."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from core import keys

    from .test_device_bound_tokens import _budget

    keys.ensure_keys()
    old_iphone.login()
    assert old_iphone.refresh().status_code == 200
    with CaptureQueriesContext(connection) as captured:
        assert old_iphone.refresh().status_code == 200
    statements = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) <= _budget(2, 6), "\n".join(statements)


# --- risk: stricter for unattested devices ------------------------------------------------------------
@pytest.mark.parametrize(("unattested", "action"), [(True, "step_up"), (False, "record")])
def test_a_new_country_is_acted_on_more_strictly(mobile_client: Any, unattested: bool, action: str) -> None:
    from risk.actions import plan
    from risk.models import RiskSignal
    from risk.signals import Signal

    chosen = plan([Signal(RiskSignal.NEW_COUNTRY)], mobile_client.client, unattested=unattested)
    assert chosen.action == action


def test_the_floor_never_weakens_a_stricter_policy(mobile_client: Any, settings: Any) -> None:
    from risk.actions import plan
    from risk.models import RiskAction, RiskPolicy, RiskSignal
    from risk.signals import Signal

    RiskPolicy.objects.create(client=mobile_client.client, impossible_travel=RiskAction.REVOKE)
    settings.SESSIONS_RISK_UNATTESTED_MIN_ACTION = "step_up"
    assert plan([Signal(RiskSignal.IMPOSSIBLE_TRAVEL)], mobile_client.client, unattested=True).action == "revoke"
    settings.SESSIONS_RISK_UNATTESTED_MIN_ACTION = "revoke"
    assert plan([Signal(RiskSignal.NEW_COUNTRY)], mobile_client.client, unattested=True).action == "revoke"


def test_an_unattested_session_in_a_new_country_must_step_up(old_iphone: Unattested, time_machine: Any) -> None:
    from risk import testing as net
    from risk.errors import STEP_UP_DESCRIPTION

    time_machine.move_to(dt.datetime(2026, 6, 1, 8, tzinfo=dt.UTC), tick=False)
    old_iphone.address = {"REMOTE_ADDR": net.PARIS}
    assert old_iphone.login().status_code == 200
    time_machine.shift(dt.timedelta(hours=10))  # Berlin 10 hours later: no impossible travel, a new country
    old_iphone.address = {"REMOTE_ADDR": net.BERLIN}
    response = old_iphone.refresh()
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": STEP_UP_DESCRIPTION}
    assert DeviceSession.objects.get().status == SessionStatus.STEP_UP_REQUIRED
    signal = SecurityEvent.objects.get(event_type="risk.signal", reason="new_country")
    assert signal.details["action"] == "step_up"


# --- admin and create_client ------------------------------------------------------------------------------
def test_admin_filters_devices_and_health_on_attested(old_iphone: Unattested, admin_client: Any) -> None:
    old_iphone.login()
    unattested = Device.objects.get()
    devices = admin_client.get(reverse("admin:attestation_device_changelist"), {"attested__exact": "0"})
    assert devices.status_code == 200 and unattested.key_id in devices.content.decode()
    none = admin_client.get(reverse("admin:attestation_device_changelist"), {"attested__exact": "1"})
    assert none.status_code == 200 and unattested.key_id not in none.content.decode()
    url = reverse("admin:device_health_devicehealth_changelist")
    health = admin_client.get(url, {"device__attested__exact": "0"})
    assert health.status_code == 200 and "unattested-device" in health.content.decode()
    attested_only = admin_client.get(url, {"device__attested__exact": "1"})
    assert attested_only.status_code == 200 and "unattested-device" not in attested_only.content.decode()


def test_create_client_allows_unattested_devices_only_when_asked() -> None:
    from io import StringIO

    from django.core.management import call_command

    call_command("create_client", "--name", "Old phones", "--public", "--redirect-uri", "com.example:/cb",
                 "--android-package", "com.example.app", "--android-cert-digest", "AA" * 32,
                 "--allow-unattested-devices", stdout=StringIO())
    call_command("create_client", "--name", "Strict", "--public", "--redirect-uri", "com.example:/cb",
                 "--ios-app-id", "ABCDE12345.com.example.app", stdout=StringIO())
    assert list(RegisteredApp.objects.values_list("platform", "allow_unattested_devices").order_by("pk")) == [
        ("android", True), ("ios", False)]



def test_create_client_chooses_what_unattested_devices_earn() -> None:
    from io import StringIO

    from django.core.management import CommandError, call_command

    call_command("create_client", "--name", "Step up", "--public", "--redirect-uri", "com.example:/cb",
                 "--ios-app-id", "ABCDE12345.com.example.app", "--allow-unattested-devices",
                 "--on-unattested", "step_up", stdout=StringIO())
    rule = HealthRule.objects.get()
    assert (rule.name, rule.condition, rule.outcome, rule.platform) == (
        "unattested-device", "unattested", "step_up", "")
    assert SecurityEvent.objects.filter(event_type="device_health.policy_changed").exists()
    with pytest.raises(CommandError, match="needs --allow-unattested-devices"):
        call_command("create_client", "--name", "X", "--public", "--redirect-uri", "com.example:/cb",
                     "--ios-app-id", "ABCDE12345.com.example.x", "--on-unattested", "deny", stdout=StringIO())
    with pytest.raises(CommandError, match="not an outcome"):
        call_command("create_client", "--name", "Y", "--public", "--redirect-uri", "com.example:/cb",
                     "--ios-app-id", "ABCDE12345.com.example.y", "--allow-unattested-devices",
                     "--on-unattested", "maybe", stdout=StringIO())
    assert HealthRule.objects.count() == 1


def test_event_details_are_json(old_iphone: Unattested) -> None:
    old_iphone.login()
    json.dumps([e.details for e in SecurityEvent.objects.all()])


# --- periodic tasks leave unattested devices alone ------------------------------------------------------
def test_revalidation_does_not_mark_unattested_devices(old_iphone: Unattested, time_machine: Any) -> None:
    from sessions.revalidation import revalidate_devices

    time_machine.move_to(dt.datetime.now(tz=dt.UTC), tick=False)
    old_iphone.login()
    time_machine.shift(dt.timedelta(days=3))
    assert revalidate_devices().marked_devices == 0
    assert Device.objects.get().requires_reattestation is False
    assert old_iphone.refresh().status_code == 200


def test_no_receipt_refresh_for_unattested_devices(old_iphone: Unattested) -> None:
    from device_health.tasks import refresh_apple_receipts

    old_iphone.login()
    assert refresh_apple_receipts() == 0
