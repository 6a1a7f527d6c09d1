"""Issue 5 at the token endpoint: enrollment attestation at the code exchange, fresh
attestation bound to every refresh (iOS App Attest assertions; Android key signatures +
Play Integrity), DPoP key in the binding, and what each failure does to the family."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client as HttpClient
from django.urls import reverse
from joserfc.jwk import ECKey

from attestation.binding import RequestBinding, grant_hash
from attestation.models import Device, DeviceStatus, Platform, RegisteredApp
from attestation.testing import google_pki as g
from core.models import SecurityEvent
from idp.tests.conftest import authorize_params, form_post, get_code, make_pkce  # noqa: F401
from sessions.dpop import thumbprint
from sessions.dpop.client import create_proof
from sessions.models import DeviceSession, SessionStatus
from simulator.android import AndroidDevice
from simulator.ios import IOSDevice

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]

APP_ID = "ABCDE12345.com.example.vigil"
HEADER = "OAuth-Client-Attestation-Challenge"


@pytest.fixture
def ios_app(mobile_client: Any) -> RegisteredApp:
    team, bundle = APP_ID.split(".", 1)
    return RegisteredApp.objects.create(
        client=mobile_client.client, platform=Platform.IOS, ios_team_id=team, ios_bundle_id=bundle,
        ios_environment="production",
    )


@pytest.fixture
def android_app(mobile_client: Any) -> RegisteredApp:
    app = RegisteredApp.objects.create(
        client=mobile_client.client, platform=Platform.ANDROID, android_package_name=g.TEST_PACKAGE,
        android_signing_cert_digests=[base64.b64encode(g.TEST_SIGNING_DIGEST).decode()],
    )
    app.set_play_integrity_keys(*(base64.b64decode(k) for k in g.play_keys_b64()))
    app.save()
    return app


def challenge(client_id: str, purpose: str) -> str:
    response = form_post(HttpClient(), reverse("attestation:challenge"), {"client_id": client_id, "purpose": purpose})
    assert response.status_code == 200, response.content
    return response.json()["attestation_challenge"]


def token_post(data: dict[str, Any], **headers: Any) -> Any:
    return form_post(HttpClient(), reverse("token"), data, **headers)


class App:
    """The mobile app: drives login, enrollment and refreshes through the wire format."""

    def __init__(self, browser: Any, client_id: str, device: Any, dpop: ECKey | None = None):
        self.browser, self.client_id, self.device, self.dpop = browser, client_id, device, dpop
        self.refresh_token = ""
        self.next_challenge = ""

    def jkt(self) -> str:
        return thumbprint(self.dpop.as_dict(private=False)) if self.dpop else ""

    def headers(self) -> dict[str, str]:
        if not self.dpop:
            return {}
        return {"HTTP_DPOP": create_proof(self.dpop, method="POST", url=f"{django_settings.IDP_ISSUER}/token")}

    def evidence(self, binding: RequestBinding, purpose: str) -> dict[str, str]:
        if isinstance(self.device, IOSDevice):
            return self.device.enrollment_params(binding) if purpose == "enroll" else self.device.assertion_params(binding)
        return self.device.enrollment_params(binding) if purpose == "enroll" else self.device.refresh_params(binding)

    def login(self, **forge: Any) -> Any:
        pkce = make_pkce()
        code, _ = get_code(self.browser, self.client_id, pkce)
        binding = RequestBinding(challenge(self.client_id, "enroll"), self.client_id, "authorization_code",
                                 forge.pop("bound_secret", None) or grant_hash(code), dpop_jkt=self.jkt())
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "com.example.app:/oauth2redirect",
                "client_id": self.client_id, "code_verifier": pkce.verifier, **self.evidence(binding, "enroll")}
        response = token_post(data, **self.headers())
        if response.status_code == 200:
            self.refresh_token = response.json()["refresh_token"]
            self.next_challenge = response[HEADER]
        return response

    def refresh(self, *, evidence: dict[str, str] | None = None, use_next: bool = True, **binding_extra: Any) -> Any:
        value = self.next_challenge if use_next and self.next_challenge else challenge(self.client_id, "refresh")
        binding = RequestBinding(value, self.client_id, "refresh_token", grant_hash(self.refresh_token),
                                 dpop_jkt=self.jkt(), **binding_extra)
        data = {"grant_type": "refresh_token", "refresh_token": self.refresh_token, "client_id": self.client_id,
                **(evidence if evidence is not None else self.evidence(binding, "refresh"))}
        response = token_post(data, **self.headers())
        if response.status_code == 200:
            self.refresh_token = response.json()["refresh_token"]
            self.next_challenge = response[HEADER]
        return response


@pytest.fixture
def iphone(browser: Any, mobile_client: Any, ios_app: RegisteredApp) -> App:
    return App(browser, mobile_client.client.client_id, IOSDevice(APP_ID, environment="production"),
               ECKey.generate_key("P-256", private=True))


@pytest.fixture
def pixel(browser: Any, mobile_client: Any, android_app: RegisteredApp, google: g.GoogleStandIn) -> App:
    return App(browser, mobile_client.client.client_id, AndroidDevice(google=google),
               ECKey.generate_key("P-256", private=True))


def test_ios_enrolls_at_login_and_every_refresh_asserts(iphone: App) -> None:
    response = iphone.login()
    assert response.status_code == 200, response.content
    session = DeviceSession.objects.get()
    assert session.device is not None and session.device.platform == Platform.IOS
    assert session.dpop_jkt == iphone.jkt()
    for _ in range(3):
        refreshed = iphone.refresh()
        assert refreshed.status_code == 200, refreshed.content
    assert Device.objects.get().counter == 3


def test_android_enrolls_and_refreshes_with_signature_and_verdict(pixel: App) -> None:
    assert pixel.login().status_code == 200
    device = DeviceSession.objects.get().device
    assert device is not None and device.platform == Platform.ANDROID
    for _ in range(2):
        response = pixel.refresh()
        assert response.status_code == 200, response.content


def test_code_exchange_without_attestation_gets_a_challenge(browser: Any, mobile_client: Any, ios_app: Any) -> None:
    pkce = make_pkce()
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    response = token_post({"grant_type": "authorization_code", "code": code, "client_id": mobile_client.client.client_id,
                           "redirect_uri": "com.example.app:/oauth2redirect", "code_verifier": pkce.verifier})
    assert response.status_code == 400 and response.json()["error"] == "use_attestation_challenge"
    assert response[HEADER]
    assert DeviceSession.objects.count() == 0


def test_refresh_without_attestation_is_refused_with_a_fresh_challenge(iphone: App) -> None:
    iphone.login()
    before = iphone.refresh_token
    response = iphone.refresh(evidence={})
    assert response.json()["error"] == "use_attestation_challenge" and response[HEADER]
    assert iphone.refresh().status_code == 200  # nothing was lost: the same refresh token still works
    assert iphone.refresh_token != before


def test_replayed_challenge_is_refused(iphone: App) -> None:
    iphone.login()
    used = iphone.next_challenge
    assert iphone.refresh().status_code == 200
    binding = RequestBinding(used, iphone.client_id, "refresh_token", grant_hash(iphone.refresh_token), dpop_jkt=iphone.jkt())
    response = iphone.refresh(evidence=iphone.device.assertion_params(binding))
    assert response.json()["error"] == "use_attestation_challenge"
    assert "challenge_reused" in response.json()["error_description"]


def test_assertion_bound_to_another_refresh_token_fails(iphone: App) -> None:
    iphone.login()
    binding = RequestBinding(challenge(iphone.client_id, "refresh"), iphone.client_id, "refresh_token",
                             grant_hash("some-other-refresh-token"), dpop_jkt=iphone.jkt())
    response = iphone.refresh(evidence=iphone.device.assertion_params(binding))
    assert response.json()["error"] == "invalid_client_attestation"
    assert SecurityEvent.objects.filter(event_type="attestation.token_refused").exists()


def test_binding_covers_the_dpop_key(iphone: App) -> None:
    iphone.login()
    stolen_key = ECKey.generate_key("P-256", private=True)
    binding = RequestBinding(challenge(iphone.client_id, "refresh"), iphone.client_id, "refresh_token",
                             grant_hash(iphone.refresh_token), dpop_jkt=thumbprint(stolen_key.as_dict(private=False)))
    response = iphone.refresh(evidence=iphone.device.assertion_params(binding))
    assert response.json()["error"] == "invalid_client_attestation"


def test_another_devices_attestation_revokes_the_family(iphone: App, browser: Any, mobile_client: Any) -> None:
    iphone.login()
    thief = App(browser, iphone.client_id, IOSDevice(APP_ID, environment="production"), iphone.dpop)
    thief.login()  # a second, legitimately enrolled device
    victim = DeviceSession.objects.order_by("pk").first()
    assert victim is not None and victim.device_id is not None
    thief_key_id = Device.objects.exclude(pk=victim.device_id).get().key_id
    binding = RequestBinding(challenge(iphone.client_id, "refresh"), iphone.client_id, "refresh_token",
                             grant_hash(iphone.refresh_token), dpop_jkt=iphone.jkt())
    evidence = thief.device.assertion_params(binding) | {"attestation_key_id": thief_key_id}
    response = iphone.refresh(evidence=evidence)
    assert response.json()["error"] == "invalid_grant"
    victim.refresh_from_db()
    assert victim.status == SessionStatus.REVOKED


def test_repeated_failures_revoke_the_session(iphone: App, settings: Any) -> None:
    settings.SESSIONS_ATTESTATION_MAX_FAILURES = 3
    iphone.login()
    forged = {"attestation_type": "apple-appattest", "attestation": "AAAA"}
    errors = []
    for _ in range(3):
        forged["attestation_challenge"] = challenge(iphone.client_id, "refresh")
        errors.append(iphone.refresh(evidence=dict(forged)).json()["error"])
    assert errors == ["invalid_client_attestation", "invalid_client_attestation", "invalid_grant"]
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_a_play_integrity_outage_at_refresh_is_a_503_that_counts_against_nothing(
    pixel: App, google: g.GoogleStandIn, settings: Any
) -> None:
    """Google's API down is no failure of the device (attestation.errors.SERVICE_OUTAGE): more
    refreshes than either failure limit allows are each a 503 with Retry-After and a fresh
    challenge; the session, its refresh token and the device stay as they were, no streak is
    signalled, and the same refresh token works once Google is back."""
    from sessions.models import RefreshToken

    settings.SESSIONS_ATTESTATION_MAX_FAILURES = 2
    settings.SESSIONS_RISK_ATTESTATION_STREAK = 2  # the risk engine's default action here: revoke
    settings.ATTESTATION_PLAY_INTEGRITY_RETRY_AFTER = 17
    assert pixel.login().status_code == 200
    presented, tokens = pixel.refresh_token, list(RefreshToken.objects.values_list("pk", "rotated_at", "revoked_at"))
    google.fail_with = 503
    for _ in range(4):
        response = pixel.refresh(use_next=False)
        assert response.status_code == 503, response.content
        body = response.json()
        assert body["error"] == "temporarily_unavailable"
        assert "integrity_api_unavailable" in body["error_description"]
        assert response["Retry-After"] == "17" and response[HEADER]
    assert pixel.refresh_token == presented
    assert list(RefreshToken.objects.values_list("pk", "rotated_at", "revoked_at")) == tokens
    session = DeviceSession.objects.get()
    assert session.status == SessionStatus.ACTIVE
    assert session.device is not None and session.device.status == DeviceStatus.ACTIVE
    refused = SecurityEvent.objects.filter(event_type="attestation.token_refused")
    assert list(refused.values_list("reason", flat=True)) == ["integrity_api_unavailable"] * 4  # each recorded
    assert not SecurityEvent.objects.filter(event_type="risk.signal", reason="attestation_failures").exists()
    assert not SecurityEvent.objects.filter(event_type="session.revoked").exists()

    google.fail_with = None
    assert pixel.refresh(use_next=False).status_code == 200


def _standard_refreshes(pixel: App, times: int) -> list[int]:
    answers = []
    for _ in range(times):
        binding = RequestBinding(challenge(pixel.client_id, "refresh"), pixel.client_id, "refresh_token",
                                 grant_hash(pixel.refresh_token), dpop_jkt=pixel.jkt())
        evidence = {**pixel.device.refresh_params(binding, integrity=None),
                    "integrity_token": "not-a-token", "integrity_token_type": "standard"}
        answers.append(pixel.refresh(evidence=evidence).status_code)
    return answers


def test_a_device_cannot_choose_an_outage_by_sending_a_kind_nobody_decodes(
    pixel: App, android_app: RegisteredApp, settings: Any
) -> None:
    """The app decodes classic tokens (its Play keys) and the deployment has no service account:
    a standard token is the device's failure, counted, not an outage it could send for ever
    (the attacker's review of SERVICE_OUTAGE)."""
    settings.SESSIONS_ATTESTATION_MAX_FAILURES = 2
    assert pixel.login().status_code == 200
    assert android_app.play_integrity_decryption_key()
    settings.ATTESTATION_PLAY_INTEGRITY_CREDENTIALS = ""
    assert _standard_refreshes(pixel, 2) == [400, 400]
    reasons = SecurityEvent.objects.filter(event_type="attestation.token_refused").values_list("reason", flat=True)
    assert list(reasons) == ["integrity_token_invalid"] * 2
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_with_nothing_to_decode_integrity_tokens_the_outage_is_the_configurations(
    pixel: App, android_app: RegisteredApp, settings: Any
) -> None:
    """Neither Play keys nor a service account: no device can pass whatever it sends, so it
    is an outage of the deployment (503), counted against no device."""
    settings.SESSIONS_ATTESTATION_MAX_FAILURES = 2
    assert pixel.login().status_code == 200
    RegisteredApp.objects.filter(pk=android_app.pk).update(
        play_integrity_decryption_key_encrypted="", play_integrity_verification_key_encrypted="")
    settings.ATTESTATION_PLAY_INTEGRITY_CREDENTIALS = ""
    assert _standard_refreshes(pixel, 3) == [503, 503, 503]
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE


def test_a_play_integrity_outage_at_enrollment_keeps_the_code(
    browser: Any, mobile_client: Any, android_app: RegisteredApp, google: g.GoogleStandIn
) -> None:
    """The enrollment's standard token cannot be decoded while Google is down: 503 with
    Retry-After, nothing stored, and the same code exchanges with a new attestation later."""
    device = AndroidDevice(google=google)
    client_id = mobile_client.client.client_id
    pkce = make_pkce()
    code, _ = get_code(browser, client_id, pkce)

    def exchange() -> Any:
        binding = RequestBinding(challenge(client_id, "enroll"), client_id, "authorization_code", grant_hash(code))
        return token_post({"grant_type": "authorization_code", "code": code, "client_id": client_id,
                           "redirect_uri": "com.example.app:/oauth2redirect", "code_verifier": pkce.verifier,
                           **device.enrollment_params(binding)})

    google.fail_with = 503
    refused = exchange()
    assert refused.status_code == 503 and refused.json()["error"] == "temporarily_unavailable"
    assert "integrity_api_unavailable" in refused.json()["error_description"]
    assert refused["Retry-After"] == "30" and refused[HEADER]
    assert not DeviceSession.objects.exists() and not Device.objects.exists()
    google.fail_with = None
    assert exchange().status_code == 200
    enrolled = DeviceSession.objects.get().device
    assert enrolled is not None and enrolled.platform == Platform.ANDROID


def test_a_good_refresh_after_failures_still_signals_the_streak(iphone: App, settings: Any,
                                                                mobile_client: Any) -> None:
    """The risk streak query is skipped only when the shared failure counter says the good
    proof followed none: after failures it runs, and the next clean refresh skips it again."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from risk.models import RiskPolicy

    settings.SESSIONS_ATTESTATION_MAX_FAILURES = 5
    settings.SESSIONS_RISK_ATTESTATION_STREAK = 2
    RiskPolicy.objects.create(client=mobile_client.client, attestation_failures="record")
    iphone.login()
    forged = {"attestation_type": "apple-appattest", "attestation": "AAAA"}
    for _ in range(2):
        forged["attestation_challenge"] = challenge(iphone.client_id, "refresh")
        assert iphone.refresh(evidence=dict(forged)).json()["error"] == "invalid_client_attestation"
    assert iphone.refresh(use_next=False).status_code == 200
    [signal] = SecurityEvent.objects.filter(event_type="risk.signal", reason="attestation_failures")
    assert signal.details["failures"] == 2
    with CaptureQueriesContext(connection) as captured:
        assert iphone.refresh().status_code == 200
    assert not [q for q in captured.captured_queries if q["sql"].startswith("SELECT") and "idp_security_event" in q["sql"]]
    assert SecurityEvent.objects.filter(event_type="risk.signal", reason="attestation_failures").count() == 1


def test_revoked_device_loses_access_at_next_refresh(iphone: App) -> None:
    iphone.login()
    Device.objects.update(status=DeviceStatus.REVOKED)
    response = iphone.refresh()
    assert response.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_a_lost_enrollment_answer_retried_is_refused_and_revokes_nothing(iphone: App) -> None:
    """The exchange that enrolled the device lost its answer; the app sends it again. Its
    evidence was single-use, so the answer cannot be given again: ``invalid_grant`` (sign in
    again), and the family the first attempt started is not revoked as code reuse."""
    pkce = make_pkce()
    code, _ = get_code(iphone.browser, iphone.client_id, pkce)
    binding = RequestBinding(challenge(iphone.client_id, "enroll"), iphone.client_id, "authorization_code",
                             grant_hash(code), dpop_jkt=iphone.jkt())
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "com.example.app:/oauth2redirect",
            "client_id": iphone.client_id, "code_verifier": pkce.verifier, **iphone.evidence(binding, "enroll")}
    assert token_post(data, **iphone.headers()).status_code == 200
    devices = Device.objects.count()
    again = token_post(data, **iphone.headers())
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert "sign in again" in again.json()["error_description"]
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE and Device.objects.count() == devices
    assert not SecurityEvent.objects.filter(event_type="oauth.code_reuse").exists()
    assert SecurityEvent.objects.filter(event_type="oauth.code_retried", outcome="denied", reason="device_bound").exists()


def test_enrollment_over_another_code_is_refused(iphone: App) -> None:
    response = iphone.login(bound_secret=grant_hash("another-code"))
    assert response.json()["error"] == "invalid_client_attestation"
    assert DeviceSession.objects.count() == 0


def test_play_integrity_policy_every_n_minutes(pixel: App, android_app: RegisteredApp) -> None:
    android_app.play_integrity_max_age_minutes = 10
    android_app.save()
    pixel.login()
    value = pixel.next_challenge
    binding = RequestBinding(value, pixel.client_id, "refresh_token", grant_hash(pixel.refresh_token), dpop_jkt=pixel.jkt())
    without_verdict = pixel.device.refresh_params(binding, integrity=None)
    assert pixel.refresh(evidence=without_verdict).status_code == 200  # recent verdict reused
    binding = RequestBinding(pixel.next_challenge, pixel.client_id, "refresh_token", grant_hash(pixel.refresh_token),
                             dpop_jkt=pixel.jkt())
    thief_key_signature = AndroidDevice(google=pixel.device.google).refresh_params(binding, integrity=None)
    assert pixel.refresh(evidence=thief_key_signature).json()["error"] == "invalid_client_attestation"


def test_lost_response_retry_with_fresh_attestation_keeps_the_session(iphone: App) -> None:
    iphone.login()
    lost_token = iphone.refresh_token
    assert iphone.refresh().status_code == 200  # the app never saw this response
    iphone.refresh_token, iphone.next_challenge = lost_token, ""
    retried = iphone.refresh()
    assert retried.status_code == 200, retried.content
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert iphone.refresh().status_code == 200


def test_rotated_token_after_the_grace_window_revokes(iphone: App, time_machine: Any) -> None:
    import datetime as dt

    time_machine.move_to(dt.datetime.now(tz=dt.UTC), tick=False)
    iphone.login()
    lost_token = iphone.refresh_token
    assert iphone.refresh().status_code == 200
    time_machine.shift(dt.timedelta(seconds=121))
    iphone.refresh_token, iphone.next_challenge = lost_token, ""
    assert iphone.refresh().json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_stolen_rotated_token_within_grace_still_needs_the_device(iphone: App, browser: Any) -> None:
    iphone.login()
    stolen = iphone.refresh_token
    assert iphone.refresh().status_code == 200
    thief = App(browser, iphone.client_id, IOSDevice(APP_ID, environment="production"), iphone.dpop)
    thief.refresh_token = stolen
    response = thief.refresh()
    assert response.status_code == 400 and response.json()["error"] == "invalid_client_attestation"


def test_required_reattestation_sends_the_user_back_to_login(iphone: App) -> None:
    iphone.login()
    Device.objects.update(requires_reattestation=True)
    response = iphone.refresh()
    assert response.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status_reason == "reattestation_required"
    assert iphone.login().status_code == 200  # a new login attests again and clears the flag
    assert Device.objects.get().requires_reattestation is False


def test_suspended_device_is_refused_but_not_revoked(iphone: App) -> None:
    iphone.login()
    Device.objects.update(status=DeviceStatus.SUSPENDED)
    response = iphone.refresh()
    assert response.json()["error"] == "invalid_client_attestation"
    assert "device_suspended" in response.json()["error_description"]
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE


def test_revoking_a_device_ends_its_sessions_at_once(iphone: App, service_client: Any) -> None:
    from attestation.flows.registry import revoke_device
    from idp.tests.test_introspection_revocation_userinfo import introspect

    response = iphone.login()
    access_token = response.json()["access_token"]
    revoke_device(Device.objects.get(), reason="lost phone")
    assert DeviceSession.objects.get().status_reason == "device_revoked"
    assert introspect(service_client, access_token).json() == {"active": False}


def test_assertion_counter_regression_is_refused(iphone: App) -> None:
    iphone.login()
    assert iphone.refresh().status_code == 200
    assert iphone.refresh().status_code == 200  # device counter is now 2
    binding = RequestBinding(challenge(iphone.client_id, "refresh"), iphone.client_id, "refresh_token",
                             grant_hash(iphone.refresh_token), dpop_jkt=iphone.jkt())
    replayed_counter = iphone.device.assertion_params(binding, counter=1)
    response = iphone.refresh(evidence=replayed_counter)
    assert response.json()["error"] == "invalid_client_attestation"
    assert "counter_not_increasing" in response.json()["error_description"]


def test_expired_challenge_is_refused(iphone: App, time_machine: Any) -> None:
    import datetime as dt

    time_machine.move_to(dt.datetime.now(tz=dt.UTC), tick=False)
    iphone.login()
    old = iphone.next_challenge
    time_machine.shift(dt.timedelta(minutes=10))
    binding = RequestBinding(old, iphone.client_id, "refresh_token", grant_hash(iphone.refresh_token), dpop_jkt=iphone.jkt())
    response = iphone.refresh(evidence=iphone.device.assertion_params(binding))
    assert response.json()["error"] == "use_attestation_challenge"
    assert "challenge_expired" in response.json()["error_description"] and response[HEADER]


def test_stale_play_integrity_verdict_is_refused(pixel: App) -> None:
    import datetime as dt

    pixel.login()
    binding = RequestBinding(challenge(pixel.client_id, "refresh"), pixel.client_id, "refresh_token",
                             grant_hash(pixel.refresh_token), dpop_jkt=pixel.jkt())
    evidence = pixel.device.refresh_params(binding, integrity=None)
    stale = dt.datetime.now(tz=dt.UTC) - dt.timedelta(hours=2)
    evidence.update(integrity_token=pixel.device.classic_token(binding, now=stale), integrity_token_type="classic")
    response = pixel.refresh(evidence=evidence)
    assert response.json()["error"] == "invalid_client_attestation"
    assert "verdict_stale" in response.json()["error_description"]


def test_dpop_proof_from_another_key_is_refused_on_attested_refresh(iphone: App) -> None:
    iphone.login()
    honest_key = iphone.dpop
    iphone.dpop = ECKey.generate_key("P-256", private=True)
    response = iphone.refresh()
    assert response.json()["error"] == "invalid_dpop_proof"
    iphone.dpop = honest_key
    assert iphone.refresh().status_code == 200


def test_exact_assertion_replay_is_refused(iphone: App) -> None:
    iphone.login()
    presented = iphone.refresh_token
    binding = RequestBinding(iphone.next_challenge, iphone.client_id, "refresh_token", grant_hash(presented),
                             dpop_jkt=iphone.jkt())
    evidence = iphone.device.assertion_params(binding)
    assert iphone.refresh(evidence=dict(evidence)).status_code == 200
    iphone.refresh_token = presented  # an attacker replays the captured request as is
    replay = iphone.refresh(evidence=dict(evidence))
    assert replay.status_code == 400 and replay.json()["error"] == "use_attestation_challenge"
    assert "challenge_reused" in replay.json()["error_description"]


def _refresh_statements(app: App) -> list[str]:
    """The SQL of one warm attested refresh. The test's own transaction turns the grant's into a
    savepoint: not counted (production has BEGIN/COMMIT there, not sent as statements)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from core import keys

    keys.ensure_keys()
    app.login()
    assert app.refresh().status_code == 200  # warm: health snapshot, risk profile, config copies
    with CaptureQueriesContext(connection) as captured:
        assert app.refresh().status_code == 200
    return [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]


def _budget(postgres: int, other: int) -> int:
    """PostgreSQL rotates in one statement that also carries the device's write
    (``sessions/flows/rotation_statement.py``); SQLite takes the transactional path: device,
    session, rotation, successor, access-token record, events."""
    from django.db import connection

    return postgres if connection.vendor == "postgresql" else other


def test_attested_refresh_query_budget(iphone: App) -> None:
    """Guards the attested refresh's statement count: the lookup and the rotation, which
    advances the App Attest counter as its first step (issue 19; docs/benchmarks.md)."""
    statements = _refresh_statements(iphone)
    assert len(statements) <= _budget(2, 7), "\n".join(statements)


def test_android_attested_refresh_query_budget(pixel: App) -> None:
    """With a Play Integrity verdict on every refresh (the default), the new verdict is merged
    into the stored one: on PostgreSQL inside the device's conditional UPDATE (``jsonb ||``),
    itself the rotation statement's first step; elsewhere under a row lock (a SELECT ... FOR
    UPDATE and an UPDATE)."""
    statements = _refresh_statements(pixel)
    assert len(statements) <= _budget(2, 8), "\n".join(statements)


# --- issue 13: the key id in any spelling, the precise missing part ---------------------------


def _own_key_id_refresh(iphone: App, spell: Any) -> Any:
    device = DeviceSession.objects.get().device
    assert device is not None
    binding = RequestBinding(iphone.next_challenge, iphone.client_id, "refresh_token",
                             grant_hash(iphone.refresh_token), dpop_jkt=iphone.jkt())
    raw = base64.b64decode(device.key_id)
    evidence = iphone.device.assertion_params(binding) | {"attestation_key_id": spell(raw)}
    return iphone.refresh(evidence=evidence)


@pytest.mark.parametrize("spell", [
    lambda raw: base64.b64encode(raw).decode(),
    lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
    lambda raw: base64.b64encode(raw).decode().rstrip("="),
    lambda raw: raw.hex(),
    lambda raw: raw.hex().upper(),
], ids=["base64", "base64url", "unpadded", "hex", "HEX"])
def test_a_device_naming_itself_in_any_spelling_keeps_its_session(iphone: App, spell: Any) -> None:
    assert iphone.login().status_code == 200
    response = _own_key_id_refresh(iphone, spell)
    assert response.status_code == 200, response.content
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE


def test_an_unreadable_key_id_is_refused_without_revoking(iphone: App) -> None:
    assert iphone.login().status_code == 200
    response = _own_key_id_refresh(iphone, lambda raw: "not-a-key-id")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_attestation"
    assert response.json()["error_description"] == "Device attestation failed: malformed_key_id."
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert not SecurityEvent.objects.filter(event_type="session.revoked").exists()


def test_android_refresh_missing_only_the_integrity_token_is_told_so(pixel: App) -> None:
    assert pixel.login().status_code == 200
    binding = RequestBinding(pixel.next_challenge, pixel.client_id, "refresh_token", grant_hash(pixel.refresh_token),
                             dpop_jkt=pixel.jkt())
    response = pixel.refresh(evidence=pixel.device.refresh_params(binding, integrity=None))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "use_attestation_challenge"
    assert body["error_description"].startswith("A Play Integrity token (integrity_token) is required on this refresh")
    assert response[HEADER]
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
