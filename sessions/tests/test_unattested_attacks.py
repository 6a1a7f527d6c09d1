"""An attacker's review of the fallback for devices that cannot attest
(docs/unattested-devices.md): downgrades, upgrades abused or lost, DeviceCheck's outage on
the upgrade, the refresh rate, odd form parameters. Each negative test asserts the answer
and that nothing changed."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc.jwk import ECKey

from attestation.binding import RequestBinding, devicecheck_hash, grant_hash
from attestation.models import Device, RegisteredApp
from attestation.testing.devicecheck_standin import DeviceCheckStandIn
from core.models import SecurityEvent
from sessions.models import DeviceSession, RefreshToken, SessionStatus
from simulator.ios import IOSDevice

from .test_device_bound_tokens import APP_ID, HEADER, android_app, challenge, ios_app  # noqa: F401 - fixtures
from .test_unattested_devices import Unattested, enable_fallback, old_iphone, purpose_of  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]


def snapshot() -> tuple[Any, ...]:
    """What a refused request must leave as it was."""
    return (
        list(Device.objects.order_by("pk").values_list("pk", "attested", "status")),
        list(DeviceSession.objects.order_by("pk").values_list("pk", "device_id", "status", "dpop_jkt")),
        list(RefreshToken.objects.order_by("pk").values_list("pk", "rotated_at", "revoked_at")),
    )


def upgrade_with_devicecheck(app: Unattested, token: str) -> Any:
    """An upgrade whose enrollment carries a DeviceCheck token, bound into the attestation."""
    binding = RequestBinding(app.next_challenge, app.client_id, "refresh_token", grant_hash(app.refresh_token),
                             dpop_jkt=app.jkt(), devicecheck=devicecheck_hash(token))
    response = app.refresh(evidence={**app.device.enrollment_params(binding), "devicecheck_token": token})
    if response.status_code == 200:
        app.attested = True
    return response


@pytest.fixture
def checked_old_iphone(browser: Any, mobile_client: Any, ios_app: RegisteredApp,  # noqa: F811
                       devicecheck: DeviceCheckStandIn) -> Unattested:
    enable_fallback(ios_app)
    ios_app.devicecheck_mode, ios_app.devicecheck_on_failure = "optional", "fail_closed"
    ios_app.save()
    phone = IOSDevice(APP_ID, environment="production", devicecheck=True)
    return Unattested(browser, mobile_client.client.client_id, phone, ECKey.generate_key("P-256", private=True))


# --- DeviceCheck's outage on the upgrade ------------------------------------------------------------
def test_upgrade_during_an_apple_outage_is_503_and_burns_nothing(checked_old_iphone: Unattested,
                                                                 devicecheck: DeviceCheckStandIn,
                                                                 settings: Any) -> None:
    """Fail closed: Apple down is no evidence failing. Retrying through a long outage must not
    count attestation failures (SESSIONS_ATTESTATION_MAX_FAILURES would revoke the session)."""
    app = checked_old_iphone
    assert app.login().status_code == 200
    token = app.device.devicecheck_token()
    before = snapshot()
    devicecheck.fail(503)
    settings.SESSIONS_ATTESTATION_MAX_FAILURES = 3
    for _ in range(4):
        response = upgrade_with_devicecheck(app, token)
        assert response.status_code == 503, response.content
        assert response.json()["error"] == "temporarily_unavailable" and response["Retry-After"]
        assert purpose_of(response[HEADER]) == "enroll"
        app.next_challenge = response[HEADER]
        assert snapshot() == before
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    devicecheck.recover()
    upgraded = upgrade_with_devicecheck(app, token)
    assert upgraded.status_code == 200, upgraded.content
    assert getattr(DeviceSession.objects.select_related("device").get().device, "attested", None) is True
    refused = SecurityEvent.objects.filter(event_type="attestation.token_refused", reason="devicecheck_unavailable")
    assert refused.count() >= 4


# --- odd form parameters: never a 500, never stored ------------------------------------------------
ODD = [
    ("attestation_platform", "IOS"), ("attestation_platform", "ios\x00"), ("attestation_platform", " ios"),
    ("attestation_platform", "web"), ("attestation_platform", "x" * 100_000), ("attestation_platform", b"\xff\xfe"),
("attestation_platform", "\U0001f34e"),
    ("attestation_unavailable_reason", "NOT_SUPPORTED"), ("attestation_unavailable_reason", "other\n"),
    ("attestation_unavailable_reason", "__class__"), ("attestation_unavailable_reason", b"\xc3\x28"),
    ("attestation_unavailable_reason", "\x00"),
    ("devicecheck_token", "\x00"), ("devicecheck_token", "é" * 10), ("devicecheck_token", "A" * 16_385),
    ("devicecheck_token", "A" * 1_000_000), ("devicecheck_token", b"\xff" * 64), ("devicecheck_token", "a b"),
    ("devicecheck_token", "%00"), ("devicecheck_token", "====="),
    ("devicecheck_token", "QU=JD"), ("devicecheck_token", "QUJD==="),
    ("attestation_type", "NONE"), ("attestation_type", "none\x00"),
]


@pytest.mark.parametrize(("name", "value"), ODD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ODD)])
def test_odd_fallback_parameters_are_refused_without_a_500(checked_old_iphone: Unattested,
                                                          devicecheck: DeviceCheckStandIn, name: str,
                                                          value: Any) -> None:
    app = checked_old_iphone
    app.claim[name] = value
    before = snapshot()
    events_before = SecurityEvent.objects.count()
    response = app.login()
    assert response.status_code in (400, 413), response.content
    body = response.json()
    assert body["error"] in {"invalid_client_attestation", "invalid_request", "use_attestation_challenge"}, body
    assert snapshot() == before and not Device.objects.exists()
    if response.status_code == 400 and body["error"] != "invalid_request":
        refused = SecurityEvent.objects.filter(pk__gt=0).order_by("-pk").filter(event_type="attestation.token_refused")
        assert SecurityEvent.objects.count() > events_before and refused.exists()
        assert body["error_description"].rstrip(".").rsplit(": ", 1)[-1] in {
            "unattested_parameters_invalid", "unsupported_format", "devicecheck_token_invalid"}, body
    assert len(devicecheck.requests) == 0  # nothing malformed reaches Apple


def test_a_repeated_parameter_is_refused_before_any_layer_reads_it(checked_old_iphone: Unattested) -> None:
    """RFC 6749 §3.2 forbids repeating a parameter: the token endpoint refuses the request
    (``invalid_request``) before any layer could judge one value and store another."""
    app = checked_old_iphone
    for name, values in (("attestation_unavailable_reason", ["emulator", "other"]),
                         ("attestation_type", ["none", "apple-appattest"])):
        app.claim[name] = values  # type: ignore[assignment]
        before = snapshot()
        response = app.login()
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"
        assert f"The {name} parameter is repeated" in response.json()["error_description"]
        assert snapshot() == before
        app.claim[name] = values[0]


# --- the upgrade abused ----------------------------------------------------------------------------
def test_a_thief_abroad_cannot_upgrade_a_stolen_session_past_the_risk_floor(old_iphone: Unattested,
                                                                          time_machine: Any) -> None:
    """The refresh token and the (software) DPoP key copied from an old phone; the thief, in
    another country, upgrades the session with the App Attest key of a genuine iPhone of their
    own. The upgrading request is judged as the unattested session it still is: the location
    floor (step-up) applies to it, and the session is not upgraded."""
    import datetime as dt

    from risk import testing as net
    from risk.errors import STEP_UP_DESCRIPTION

    time_machine.move_to(dt.datetime(2026, 6, 1, 8, tzinfo=dt.UTC), tick=False)
    old_iphone.address = {"REMOTE_ADDR": net.PARIS}
    assert old_iphone.login().status_code == 200
    time_machine.shift(dt.timedelta(hours=10))
    thief = old_iphone
    thief.address = {"REMOTE_ADDR": net.BERLIN}
    thief.device = IOSDevice(APP_ID, environment="production")  # the thief's own genuine iPhone
    thief.next_challenge = challenge(thief.client_id, "enroll")
    response = thief.upgrade()
    assert response.status_code == 400, response.content
    assert response.json() == {"error": "invalid_grant", "error_description": STEP_UP_DESCRIPTION}
    session = DeviceSession.objects.select_related("device").get()
    assert session.status == SessionStatus.STEP_UP_REQUIRED
    assert getattr(session.device, "attested", None) is False
    assert not SecurityEvent.objects.filter(event_type="attestation.session_upgraded").exists()
    assert SecurityEvent.objects.get(event_type="risk.signal", reason="new_country").details["action"] == "step_up"


# --- the refresh rate ------------------------------------------------------------------------------
def test_a_rate_limited_session_may_still_upgrade_and_is_then_unlimited(old_iphone: Unattested,
                                                                       settings: Any) -> None:
    settings.SESSIONS_UNATTESTED_REFRESH_LIMIT = 2
    assert old_iphone.login().status_code == 200
    assert old_iphone.refresh().status_code == 200 and old_iphone.refresh().status_code == 200
    before, token = snapshot(), old_iphone.refresh_token
    limited = old_iphone.refresh()
    assert limited.status_code == 429 and limited.json()["error"] == "slow_down" and limited["Retry-After"]
    assert snapshot() == before and old_iphone.refresh_token == token
    # A script cannot use "evidence" to skip the limit: what does not verify issues nothing.
    forged = old_iphone.upgrade(bound_secret="another refresh token")
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_client_attestation"
    assert snapshot() == before
    old_iphone.next_challenge = forged[HEADER]
    upgraded = old_iphone.upgrade()
    assert upgraded.status_code == 200, upgraded.content
    for _ in range(3):  # attested now: no such limit
        assert old_iphone.refresh().status_code == 200
    assert SecurityEvent.objects.filter(reason="unattested_rate_limited").count() == 1


# --- downgrades and wider scopes -------------------------------------------------------------------
def test_asking_a_refresh_for_more_scope_gets_the_reduction(old_iphone: Unattested) -> None:
    import jwt

    assert old_iphone.login().status_code == 200
    response = old_iphone.refresh(evidence={"scope": "openid profile email"})
    assert response.status_code == 200, response.content
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["device_attested"] is False and claims["device_health"] == "reduced"
    assert "email" not in claims["scope"].split() and response.json()["device_attested"] is False


def test_a_second_unattested_sign_in_leaves_the_users_attested_session_alone(
        old_iphone: Unattested, browser: Any, mobile_client: Any) -> None:
    """The same user, the same client: one iPhone attested, then a script claiming it cannot
    attest. The script gets its own reduced session; the attested one is untouched."""
    attested = Unattested(browser, old_iphone.client_id, IOSDevice(APP_ID, environment="production"),
                          ECKey.generate_key("P-256", private=True))
    attested.attested = True
    attested.evidence = lambda binding, purpose: (  # type: ignore[method-assign]
        attested.device.enrollment_params(binding) if purpose == "enroll"
        else attested.device.assertion_params(binding))
    assert attested.login().status_code == 200
    first = DeviceSession.objects.get()
    assert old_iphone.login().status_code == 200
    assert DeviceSession.objects.get(pk=first.pk).device_id == first.device_id
    assert getattr(DeviceSession.objects.get(pk=first.pk).device, "attested", None) is True
    assert attested.refresh().status_code == 200
    bare = attested.refresh(evidence={})
    assert bare.status_code == 400 and bare.json()["error"] == "use_attestation_challenge"


# --- the upgrade replayed, lost, retried -----------------------------------------------------------
def test_a_lost_upgrade_response_is_retried_with_an_assertion(old_iphone: Unattested) -> None:
    assert old_iphone.login().status_code == 200
    lost_token = old_iphone.refresh_token
    assert old_iphone.upgrade().status_code == 200
    successor = old_iphone.refresh_token
    old_iphone.refresh_token, old_iphone.next_challenge = lost_token, ""  # the answer never arrived
    retried = old_iphone.refresh()  # an assertion of the new key over a refresh challenge
    assert retried.status_code == 200, retried.content
    assert retried.json()["refresh_token"] == successor
    assert SecurityEvent.objects.filter(event_type="oauth.refresh_retried").count() == 1
    assert SecurityEvent.objects.filter(event_type="attestation.session_upgraded").count() == 1


def test_a_replayed_upgrade_request_upgrades_nothing_more(old_iphone: Unattested) -> None:
    """The upgrade's form captured on the network and sent again (with a fresh DPoP proof of
    the copied key): its enroll challenge is spent; nothing changes."""
    assert old_iphone.login().status_code == 200
    binding = RequestBinding(old_iphone.next_challenge, old_iphone.client_id, "refresh_token",
                             grant_hash(old_iphone.refresh_token), dpop_jkt=old_iphone.jkt())
    form = old_iphone.device.enrollment_params(binding)
    presented = old_iphone.refresh_token
    assert old_iphone.refresh(evidence=form).status_code == 200
    before = snapshot()
    old_iphone.refresh_token = presented
    replayed = old_iphone.refresh(evidence=form)
    assert replayed.status_code == 400, replayed.content
    assert replayed.json()["error"] == "use_attestation_challenge"  # an enrollment proves no attested session
    assert Device.objects.filter(attested=True).count() == 1
    assert SecurityEvent.objects.filter(event_type="attestation.session_upgraded").count() == 1
    assert snapshot()[0] == before[0]


def test_an_outage_at_an_unattested_iphones_sign_in_keeps_the_code(checked_old_iphone: Unattested,
                                                                   devicecheck: DeviceCheckStandIn) -> None:
    """Fail closed at the code exchange of the fallback: 503 with a fresh challenge, nothing
    stored, and the same authorization code works once Apple is back."""
    from idp.tests.conftest import get_code, make_pkce

    from .test_device_bound_tokens import token_post

    app = checked_old_iphone
    ios = RegisteredApp.objects.get(platform="ios")
    ios.devicecheck_mode = "required"
    ios.save()
    pkce = make_pkce()
    code, _ = get_code(app.browser, app.client_id, pkce)

    def exchange(challenge_value: str) -> Any:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "com.example.app:/oauth2redirect",
                "client_id": app.client_id, "code_verifier": pkce.verifier, **app.claim,
                "devicecheck_token": app.device.devicecheck_token(), "attestation_challenge": challenge_value}
        return token_post(data, **app.headers())

    devicecheck.fail(503)
    down = exchange(challenge(app.client_id, "enroll"))
    assert down.status_code == 503 and down.json()["error"] == "temporarily_unavailable" and down["Retry-After"]
    assert not Device.objects.exists() and not DeviceSession.objects.exists()
    assert SecurityEvent.objects.filter(event_type="attestation.token_refused", reason="devicecheck_unavailable").exists()
    devicecheck.recover()
    back = exchange(down[HEADER])
    assert back.status_code == 200, back.content
    assert back.json()["device_attested"] is False


def test_the_id_token_of_an_unattested_session_keeps_to_the_reduction(old_iphone: Unattested) -> None:
    """The ID token carries only the reduced scopes' claims (no ``email``); it has no
    ``device_attested`` claim: it is the app's own, which knows (docs/unattested-devices.md)."""
    import jwt

    for response in (old_iphone.login(), old_iphone.refresh()):
        assert response.status_code == 200
        assert response.json()["device_attested"] is False
        id_claims = jwt.decode(response.json()["id_token"], options={"verify_signature": False})
        assert "email" not in id_claims and "device_attested" not in id_claims



def test_the_platform_claim_sidesteps_devicecheck_while_the_other_platform_allows_the_fallback(
        checked_old_iphone: Unattested, android_app: RegisteredApp, devicecheck: DeviceCheckStandIn) -> None:
    """Documented (docs/unattested-devices.md, threat 4): the platform is the client's word."""
    ios = RegisteredApp.objects.get(platform="ios")
    ios.devicecheck_mode = "required"
    ios.save()
    as_iphone = checked_old_iphone.login()
    assert as_iphone.status_code == 400 and as_iphone.json()["error_description"].endswith("devicecheck_token_required.")
    claims_android = Unattested(checked_old_iphone.browser, checked_old_iphone.client_id, checked_old_iphone.device,
                                ECKey.generate_key("P-256", private=True), platform="android")
    assert claims_android.login().status_code == 400  # Android's fallback off: refused as before
    enable_fallback(android_app)
    assert claims_android.login().status_code == 200 and devicecheck.requests == []
    assert Device.objects.get().platform == "android"


# --- the operator's hand -----------------------------------------------------------------------------
def test_a_suspended_unattested_device_cannot_refresh_or_upgrade(old_iphone: Unattested) -> None:
    """As an attested device's: refused (``device_suspended``), the session kept, the token
    unused; reactivated, it refreshes again."""
    from attestation.flows.registry import reactivate_device, suspend_device

    assert old_iphone.login().status_code == 200
    suspend_device(Device.objects.get(), reason="investigating")
    before, token = snapshot(), old_iphone.refresh_token
    for response in (old_iphone.refresh(), old_iphone.upgrade()):
        assert response.status_code == 400, response.content
        assert response.json()["error"] == "invalid_client_attestation"
        assert response.json()["error_description"].endswith("device_suspended.")
        assert snapshot() == before and old_iphone.refresh_token == token
    refused = SecurityEvent.objects.filter(event_type="attestation.token_refused", reason="device_suspended")
    assert refused.count() == 2
    reactivate_device(Device.objects.get(), reason="cleared")
    assert old_iphone.refresh().status_code == 200


def test_re_attestation_required_of_an_unattested_device_sends_the_user_to_sign_in(old_iphone: Unattested) -> None:
    """The admin's "require re-attestation" was ignored for an unattested device; it now ends
    the session as for an attested one, and a new sign-in (the most such a device can give)
    clears it."""
    from attestation.flows.registry import require_reattestation

    assert old_iphone.login().status_code == 200
    require_reattestation(Device.objects.get(), reason="check")
    response = old_iphone.refresh()
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert SecurityEvent.objects.filter(event_type="attestation.token_refused",
                                        reason="reattestation_required").count() == 1
    assert old_iphone.login().status_code == 200  # the same DPoP key: the same device, cleared
    device = Device.objects.get()
    assert device.requires_reattestation is False and device.reattestation_required_at is None
    assert old_iphone.refresh().status_code == 200
