"""Device signals: a new device for the user, a streak of failed attestations, a
downgraded Play Integrity verdict (docs/risk.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from attestation.models import Device, Platform, RegisteredApp
from core.events import EventType, Outcome, record
from core.models import SecurityEvent
from core.policy import TokenContext
from risk import testing as net
from risk.errors import REVOKED_DESCRIPTION, STEP_UP_DESCRIPTION, RiskRefusedError
from risk.models import DeviceRiskState, RiskPolicy
from risk.policy import evaluate_token_request
from risk.signals import integrity_level
from sessions.flows.tokens import issue_access_token
from sessions.models import DeviceSession, SessionStatus

pytestmark = pytest.mark.django_db

DEVICE = ["MEETS_DEVICE_INTEGRITY", "MEETS_BASIC_INTEGRITY"]
STRONG = ["MEETS_STRONG_INTEGRITY", *DEVICE]
BASIC = ["MEETS_BASIC_INTEGRITY"]


@pytest.fixture
def android_app(mobile_client: Any) -> RegisteredApp:
    return RegisteredApp.objects.create(client=mobile_client.client, platform=Platform.ANDROID,
                                        android_package_name="com.example.app", require_attestation=False)


@pytest.fixture
def make_device(android_app: RegisteredApp) -> Any:
    def make(key_id: str = "key-1", verdicts: list[str] | None = None) -> Device:
        verdict = {"play_integrity": {"device_recognition_verdict": verdicts}} if verdicts is not None else {}
        return Device.objects.create(platform=Platform.ANDROID, app=android_app, key_id=key_id, public_key="-",
                                     security_level="tee", verdict=verdict)

    return make


def make_session(user: Any, client: Any, device: Device | None, sid: str) -> DeviceSession:
    return DeviceSession.objects.create(sid=sid, user=user, client=client, auth_time=timezone.now(),
                                        acr="urn:vigil:acr:password", device=device)


def evaluate(session: DeviceSession, grant_type: str = "refresh_token") -> RiskRefusedError | None:
    """Run the token policy as a grant does (inside its transaction), and handle a refusal
    after the rollback as the server does (``handle_error_response``)."""
    context = TokenContext(grant_type=grant_type, client=session.client, user=session.user, session=session,
                           scope="openid", now=timezone.now(), request=None, device=session.device)
    try:
        with transaction.atomic():
            evaluate_token_request(context)
    except RiskRefusedError as error:
        error.run_after_rollback()
        error()
        return error
    return None


def signals(kind: str) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(event_type="risk.signal", reason=kind))


def test_integrity_levels_of_stored_verdicts():
    assert integrity_level({"play_integrity": {"device_recognition_verdict": STRONG}}) == "strong"
    assert integrity_level({"play_integrity": {"device_recognition_verdict": BASIC}}) == "basic"
    assert integrity_level({"play_integrity": {"device_recognition_verdict": []}}) == "none"
    assert integrity_level({"key_attestation": {}}) is None and integrity_level(None) is None


# --- new device ---------------------------------------------------------------------------------


def test_first_session_on_a_device_is_a_new_device(user, mobile_client, make_device):
    phone = make_device()
    assert evaluate(make_session(user, mobile_client.client, phone, "s1"), "authorization_code") is None
    [signal] = signals("new_device")
    assert signal.details["device"] == phone.pk and signal.details["platform"] == "android"
    assert signal.details["action"] == "record" and signal.session_id == "s1"

    evaluate(make_session(user, mobile_client.client, phone, "s2"), "authorization_code")
    assert len(signals("new_device")) == 1  # the same device again
    evaluate(make_session(user, mobile_client.client, make_device("key-2"), "s3"), "authorization_code")
    assert len(signals("new_device")) == 2
    evaluate(make_session(user, mobile_client.client, phone, "s1-refresh"), "refresh_token")
    assert len(signals("new_device")) == 2  # judged only when a family starts


def test_a_new_device_policy_of_revoke_refuses_the_code_exchange(user, mobile_client, make_device):
    RiskPolicy.objects.create(client=mobile_client.client, new_device="revoke")
    refused = evaluate(make_session(user, mobile_client.client, make_device(), "s1"), "authorization_code")
    assert refused is not None and refused.description == REVOKED_DESCRIPTION
    assert SecurityEvent.objects.get(event_type="risk.action").reason == "revoke"


# --- integrity downgrade ---------------------------------------------------------------------------


def test_a_weaker_verdict_than_the_last_one_requires_step_up(user, mobile_client, make_device):
    phone = make_device(verdicts=STRONG)
    session = make_session(user, mobile_client.client, phone, "s1")
    assert evaluate(session) is None
    assert DeviceRiskState.objects.get(device=phone).integrity_level == "strong"

    phone.verdict = {"play_integrity": {"device_recognition_verdict": BASIC}}
    phone.save()
    refused = evaluate(session)

    assert refused is not None and refused.error == "invalid_grant" and refused.description == STEP_UP_DESCRIPTION
    [signal] = signals("integrity_downgrade")
    assert signal.details["previous"] == "strong" and signal.details["current"] == "basic"
    session.refresh_from_db()
    assert session.status == SessionStatus.STEP_UP_REQUIRED and session.status_reason == "risk:integrity_downgrade"
    assert DeviceRiskState.objects.get(device=phone).integrity_level == "basic"  # kept despite the rollback


def test_same_or_better_verdicts_do_not_fire(user, mobile_client, make_device):
    phone = make_device(verdicts=DEVICE)
    session = make_session(user, mobile_client.client, phone, "s1")
    for verdicts in (DEVICE, STRONG, STRONG):
        phone.verdict = {"play_integrity": {"device_recognition_verdict": verdicts}}
        phone.save()
        assert evaluate(session) is None
    assert not signals("integrity_downgrade")


def test_devices_without_play_integrity_are_not_judged(user, mobile_client, make_device):
    phone = make_device(verdicts=None)
    assert evaluate(make_session(user, mobile_client.client, phone, "s1")) is None
    assert not DeviceRiskState.objects.exists()


# --- streak of failed attestations ------------------------------------------------------------------


def refused_attestation(session: DeviceSession, reason: str = "bad_signature") -> None:
    record(EventType.ATTESTATION_TOKEN_REFUSED, outcome=Outcome.DENIED, reason=reason, user=session.user,
           client_id=session.client.client_id, session_id=session.sid)


def access_token(session: DeviceSession) -> str:
    token, _, _ = issue_access_token(client=session.client, user=session.user, scope="openid",
                                     audience=[session.client.client_id], session=session, now=timezone.now())
    return token


def test_a_streak_of_failed_attestations_revokes_at_userinfo(user, mobile_client, make_device):
    session = make_session(user, mobile_client.client, make_device(), "s1")
    token = access_token(session)
    for reason in ("bad_signature", "challenge_expired", "counter_not_increasing", "bad_signature"):
        refused_attestation(session, reason)

    response = net.userinfo(token, net.PARIS)

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token", "error_description": REVOKED_DESCRIPTION}
    [signal] = signals("attestation_failures")
    assert signal.details["failures"] == 3 and signal.details["reasons"] == ["bad_signature", "counter_not_increasing",
                                                                            "bad_signature"]
    session.refresh_from_db()
    assert session.status == SessionStatus.REVOKED and session.status_reason == "risk:attestation_failures"


def test_stale_challenges_are_no_streak(user, mobile_client, make_device):
    """A challenge reused or expired is what an app's retry after a 503 (or a long pause) sends:
    recorded, never a failure of the device (attestation.errors.STALE_CHALLENGE)."""
    session = make_session(user, mobile_client.client, make_device(), "s1")
    for reason in ("challenge_reused", "challenge_expired", "challenge_reused", "bad_signature", "challenge_reused"):
        refused_attestation(session, reason)

    assert net.userinfo(access_token(session), net.PARIS).status_code == 200
    assert signals("attestation_failures") == []
    session.refresh_from_db()
    assert session.status == SessionStatus.ACTIVE


def test_service_outages_are_no_streak(user, mobile_client, make_device):
    """Google's Play Integrity API, Apple's DeviceCheck or our revocation list down proves nothing
    against the device (attestation.errors.SERVICE_OUTAGE): a run of them signals nothing."""
    session = make_session(user, mobile_client.client, make_device(), "s1")
    for reason in ("integrity_api_unavailable", "devicecheck_unavailable", "bad_signature",
                   "revocation_list_unavailable", "integrity_api_unavailable"):
        refused_attestation(session, reason)

    assert net.userinfo(access_token(session), net.PARIS).status_code == 200
    assert signals("attestation_failures") == []
    session.refresh_from_db()
    assert session.status == SessionStatus.ACTIVE


def test_stale_challenges_do_not_push_real_failures_out_of_the_window(user, mobile_client, make_device):
    """The streak reads a bounded window of the newest events: stale-challenge refusals (which a
    holder of the refresh token can send at will) are left out of it, so they cannot hide the
    forgeries before them."""
    session = make_session(user, mobile_client.client, make_device(), "s1")
    refused_attestation(session, "bad_signature")
    refused_attestation(session, "bad_signature")
    for _ in range(40):  # more than the window (threshold * 4 + 20)
        refused_attestation(session, "challenge_reused")
    refused_attestation(session, "bad_signature")

    assert net.userinfo(access_token(session), net.PARIS).status_code == 401
    [signal] = signals("attestation_failures")
    assert signal.details["reasons"] == ["bad_signature", "bad_signature", "bad_signature"]


def test_failures_before_the_last_issued_token_do_not_count(user, mobile_client, make_device, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    session = make_session(user, mobile_client.client, make_device(), "s1")
    refused_attestation(session)
    refused_attestation(session)
    time_machine.shift(timedelta(seconds=1))
    record(EventType.OAUTH_TOKEN_REFRESHED, user=user, client_id=session.client.client_id, session_id=session.sid)
    time_machine.shift(timedelta(seconds=1))
    refused_attestation(session)
    refused_attestation(session)
    assert net.userinfo(access_token(session), net.PARIS).status_code == 200
    assert not signals("attestation_failures")


def test_a_recorded_streak_is_signalled_once(user, mobile_client, make_device, settings, time_machine):
    settings.SESSIONS_RISK_ATTESTATION_STREAK = 2
    time_machine.move_to(timezone.now(), tick=False)
    RiskPolicy.objects.create(client=mobile_client.client, attestation_failures="record")
    session = make_session(user, mobile_client.client, make_device(), "s1")
    refused_attestation(session)
    refused_attestation(session)
    time_machine.shift(timedelta(seconds=1))
    assert evaluate(session) is None
    time_machine.shift(timedelta(seconds=1))
    assert evaluate(session) is None
    assert len(signals("attestation_failures")) == 1


def test_a_refusal_applies_what_it_carries_once(user, mobile_client):
    """Rendering is pure; the server's error handling runs what the refusal keeps, once."""
    calls: list[int] = []
    error = RiskRefusedError(STEP_UP_DESCRIPTION, lambda: calls.append(1))
    status, body, headers = error()
    error()
    assert calls == [] and status == 400
    error.run_after_rollback()
    error.run_after_rollback()
    assert calls == [1]
