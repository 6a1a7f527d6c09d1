"""The fallback's races on PostgreSQL (docs/unattested-devices.md): concurrent refreshes of
one unattested refresh token leave one live successor (the existing reuse detection and
retry window apply, the one-statement rotation included); concurrent upgrades of one token
bind the family to one attested device; concurrent enrollments of one DPoP key store one
device."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from joserfc.jwk import ECKey

from attestation.binding import RequestBinding, grant_hash
from attestation.models import Device, Platform, RegisteredApp
from core.crypto import token_digest
from core.models import SecurityEvent
from idp.tests.conftest import form_post, get_code, make_pkce
from sessions.models import DeviceSession, RefreshToken, SessionStatus
from simulator.android import AndroidDevice
from simulator.ios import IOSDevice
from tests.concurrency import run_concurrently

from .test_device_bound_tokens import APP_ID, android_app, challenge, ios_app, token_post  # noqa: F401  (fixtures)
from .test_unattested_devices import Unattested, enable_fallback

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("allow_test_roots")]


@pytest.fixture
def old_phone(browser: Any, mobile_client: Any, android_app: RegisteredApp, google: Any) -> Unattested:  # noqa: F811
    enable_fallback(android_app)
    return Unattested(browser, mobile_client.client.client_id, AndroidDevice(google=google),
                      ECKey.generate_key("P-256", private=True), platform=Platform.ANDROID)


def _live(session: DeviceSession) -> Any:
    return RefreshToken.objects.filter(session=session, rotated_at__isnull=True, revoked_at__isnull=True)


def test_concurrent_unattested_refreshes_leave_one_live_successor(old_phone: Unattested) -> None:
    assert old_phone.login().status_code == 200
    presented = old_phone.refresh_token
    proofs = [old_phone.headers() for _ in range(12)]

    def attempt(i: int) -> Any:
        data = {"grant_type": "refresh_token", "refresh_token": presented, "client_id": old_phone.client_id}
        return form_post(HttpClient(), reverse("token"), data, **proofs[i])

    responses = run_concurrently(12, attempt)
    winners = {r.json()["refresh_token"] for r in responses if r.status_code == 200}
    assert len(winners) == 1, [(r.status_code, r.content[:200]) for r in responses]  # retries get the same one
    session = DeviceSession.objects.get()
    assert session.status == SessionStatus.ACTIVE
    assert [t.token_hash for t in _live(session)] == [token_digest(winners.pop())]


def test_replay_after_the_chain_moved_on_revokes_the_family(old_phone: Unattested) -> None:
    old_phone.login()
    stolen = old_phone.refresh_token
    assert old_phone.refresh().status_code == 200
    assert old_phone.refresh().status_code == 200  # the successor was used: the chain moved on
    replay = token_post({"grant_type": "refresh_token", "refresh_token": stolen, "client_id": old_phone.client_id},
                        **old_phone.headers())
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    session = DeviceSession.objects.get()
    assert session.status == SessionStatus.REVOKED and not _live(session).exists()


def test_concurrent_upgrades_bind_one_attested_device(browser: Any, mobile_client: Any,
                                                      ios_app: RegisteredApp) -> None:  # noqa: F811
    enable_fallback(ios_app)
    app = Unattested(browser, mobile_client.client.client_id, IOSDevice(APP_ID, environment="production"),
                     ECKey.generate_key("P-256", private=True))
    assert app.login().status_code == 200
    presented = app.refresh_token
    attempts = []
    for _ in range(6):  # six app instances racing, each attesting its own new key
        phone = IOSDevice(APP_ID, environment="production")
        binding = RequestBinding(challenge(app.client_id, "enroll"), app.client_id, "refresh_token",
                                 grant_hash(presented), dpop_jkt=app.jkt())
        attempts.append((phone.enrollment_params(binding), app.headers()))

    def attempt(i: int) -> Any:
        evidence, headers = attempts[i]
        data = {"grant_type": "refresh_token", "refresh_token": presented, "client_id": app.client_id, **evidence}
        return form_post(HttpClient(), reverse("token"), data, **headers)

    responses = run_concurrently(6, attempt)
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) >= 1, [(r.status_code, r.content[:200]) for r in responses]
    # a loser that read the family before the winner committed: refused as device_changed (invalid_grant);
    # after: judged as a refresh of the attested session, whose proof an enrollment is not
    # (invalid_client_attestation, or use_attestation_challenge when its enrollment challenge is
    # judged first: not a refresh challenge; both with a fresh challenge, the family kept)
    refused = {r.json()["error"] for r in responses if r.status_code != 200}
    assert refused <= {"invalid_grant", "invalid_client_attestation", "use_attestation_challenge"}
    session = DeviceSession.objects.select_related("device").get()
    assert session.status == SessionStatus.ACTIVE and getattr(session.device, "attested", None) is True
    assert SecurityEvent.objects.filter(event_type="attestation.session_upgraded").count() == 1
    assert _live(session).count() == 1


def test_concurrent_enrollments_of_one_key_store_one_device(old_phone: Unattested) -> None:
    codes = []
    for _ in range(6):
        pkce = make_pkce()
        code, _ = get_code(old_phone.browser, old_phone.client_id, pkce)
        codes.append((code, pkce, challenge(old_phone.client_id, "enroll"), old_phone.headers()))

    def attempt(i: int) -> Any:
        code, pkce, value, headers = codes[i]
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "com.example.app:/oauth2redirect",
                "client_id": old_phone.client_id, "code_verifier": pkce.verifier, **old_phone.claim,
                "attestation_challenge": value}
        return form_post(HttpClient(), reverse("token"), data, **headers)

    responses = run_concurrently(6, attempt)
    assert all(r.status_code == 200 for r in responses), [r.content[:200] for r in responses]
    assert Device.objects.unattested().count() == 1
    assert DeviceSession.objects.filter(device=Device.objects.get()).count() == 6
