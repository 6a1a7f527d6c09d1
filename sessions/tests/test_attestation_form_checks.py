"""Attestation checks at the token endpoint that had no test of their own (issue 19,
/work/notes/checks.md): C14 a session of an attesting client with no device, A14 malformed
evidence parameters (docs/attestation.md §3; draft-ietf-oauth-attestation-based-client-auth
error codes, never a 500) and A16 evidence from the other platform (``device_mismatch``).

Each test forges the request, asserts the exact RFC 6749 §5.2 error body, what changed (only
what the check itself does) and the security event."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from attestation.binding import RequestBinding, grant_hash
from attestation.models import Device, Platform, RegisteredApp
from core.models import SecurityEvent
from idp.tests.conftest import form_post, get_code, make_pkce
from sessions.models import AccessToken, AuthorizationCode, DeviceSession, RefreshToken, SessionStatus

from .test_device_bound_tokens import (  # noqa: F401 - fixtures
    APP_ID,
    HEADER,
    App,
    android_app,
    challenge,
    ios_app,
    iphone,
    pixel,
    token_post,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]


def snapshot() -> dict[str, Any]:
    """Every row a token request could change, as comparable values."""
    return {
        "codes": list(AuthorizationCode.objects.order_by("pk").values_list("pk", "used_at")),
        "sessions": list(DeviceSession.objects.order_by("pk").values_list("pk", "status", "status_reason",
                                                                         "last_refresh_at", "device_id")),
        "refresh": list(RefreshToken.objects.order_by("pk").values_list("pk", "rotated_at", "revoked_at")),
        "access": list(AccessToken.objects.order_by("pk").values_list("jti", flat=True)),
        "devices": list(Device.objects.order_by("pk").values_list("pk", "status", "counter",
                                                                  "requires_reattestation")),
    }


def assert_error(response: Any, error: str, description: str | None = None) -> dict[str, Any]:
    """A 400 RFC 6749 §5.2 JSON error body, never cached."""
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    if description is not None:
        assert body["error_description"] == description
    return body


def refused_events(reason: str) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(event_type="attestation.token_refused", reason=reason))


# --- C14: the client requires attestation, the session has no device -> invalid_grant ----------
@pytest.fixture
def unbound_tokens(tokens: dict[str, Any], mobile_client: Any, django_capture_on_commit_callbacks: Any) -> dict[str, Any]:
    """Tokens from a login before the client required attestation; then the admin registers
    its iOS app with ``require_attestation`` on (the config copies follow at once)."""
    assert DeviceSession.objects.get().device_id is None
    team, bundle = APP_ID.split(".", 1)
    with django_capture_on_commit_callbacks(execute=True):
        RegisteredApp.objects.create(client=mobile_client.client, platform=Platform.IOS, ios_team_id=team,
                                     ios_bundle_id=bundle, ios_environment="production", require_attestation=True)
    return tokens


def _refresh(tokens: dict[str, Any], client_id: str, **extra: str) -> Any:
    return token_post({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                       "client_id": client_id, **extra})


UNBOUND = "This session is not bound to an attested device: authorize again."


def test_a_session_without_a_device_cannot_refresh_once_the_client_requires_attestation(
    unbound_tokens, mobile_client, django_capture_on_commit_callbacks
):
    client_id = mobile_client.client.client_id
    before = snapshot()
    response = _refresh(unbound_tokens, client_id)
    assert_error(response, "invalid_grant", UNBOUND)
    assert snapshot() == before  # not rotated, no access token, the family left as it was
    event = SecurityEvent.objects.filter(event_type="oauth.error").order_by("-id").first()
    assert event is not None and event.reason == "invalid_grant" and event.details["description"] == UNBOUND
    with django_capture_on_commit_callbacks(execute=True):
        RegisteredApp.objects.update(require_attestation=False)  # the config copies follow on commit
    assert _refresh(unbound_tokens, client_id).status_code == 200  # the refusal took nothing away


def test_evidence_sent_with_an_unbound_session_does_not_bind_a_device(unbound_tokens, mobile_client):
    """An enrolled-looking request cannot attach a device to a family at refresh: only the code
    exchange enrolls (docs/attestation.md §3)."""
    from simulator.ios import IOSDevice

    client_id = mobile_client.client.client_id
    binding = RequestBinding(challenge(client_id, "refresh"), client_id, "refresh_token",
                             grant_hash(unbound_tokens["refresh_token"]))
    evidence = IOSDevice(APP_ID, environment="production").enrollment_params(binding)
    before = snapshot()
    response = _refresh(unbound_tokens, client_id, **evidence)
    assert_error(response, "invalid_grant", UNBOUND)
    assert snapshot() == before
    assert not Device.objects.exists()


# --- A14: malformed evidence parameters -> invalid_client_attestation, never a 500 -----------
FORMAT = "Device attestation failed: unsupported_format."
MALFORMED = "Device attestation failed: malformed_token."

MALFORMED_FIELDS = {
    "unknown-type": ({"attestation_type": "safetynet"}, FORMAT, "unsupported_format"),
    "type-wrong-case": ({"attestation_type": "Apple-AppAttest"}, FORMAT, "unsupported_format"),
    "challenge-without-type": ({"attestation_type": ""}, FORMAT, "unsupported_format"),
    "signals-not-json": ({"attestation_signals": "{rooted: false"}, MALFORMED, "malformed_token"),
    "signals-array": ({"attestation_signals": "[1, 2]"}, MALFORMED, "malformed_token"),
    "signals-string": ({"attestation_signals": '"rooted"'}, MALFORMED, "malformed_token"),
    "signals-null": ({"attestation_signals": "null"}, MALFORMED, "malformed_token"),
    "signals-number": ({"attestation_signals": "1"}, MALFORMED, "malformed_token"),
    # Deeper than the JSON parser recurses: was a RecursionError, a 500 (fixed in device_binding).
    "signals-deeply-nested": ({"attestation_signals": '{"a":' * 5000 + "1" + "}" * 5000}, MALFORMED,
                              "malformed_token"),
    "signals-deeply-nested-array": ({"attestation_signals": "[" * 100_000}, MALFORMED, "malformed_token"),
    "integrity-type-unknown": ({"integrity_token_type": "jwe"}, MALFORMED, "malformed_token"),
    "integrity-type-wrong-case": ({"integrity_token_type": "Classic"}, MALFORMED, "malformed_token"),
}


def _genuine_evidence(app: App) -> dict[str, str]:
    binding = RequestBinding(app.next_challenge, app.client_id, "refresh_token", grant_hash(app.refresh_token),
                             dpop_jkt=app.jkt())
    return app.evidence(binding, "refresh")


@pytest.mark.parametrize("phone", ["iphone", "pixel"])
@pytest.mark.parametrize("case", list(MALFORMED_FIELDS))
def test_malformed_evidence_fields_are_refused_without_losing_the_family(request, phone, case):
    app: App = request.getfixturevalue(phone)
    assert app.login().status_code == 200
    forged_fields, description, reason = MALFORMED_FIELDS[case]
    before = snapshot()
    response = app.refresh(evidence=_genuine_evidence(app) | forged_fields)
    assert_error(response, "invalid_client_attestation", description)
    assert response[HEADER]  # a fresh challenge to retry with
    assert snapshot() == before
    [event] = refused_events(reason)
    assert event.client_id == app.client_id and event.details["grant_type"] == "refresh_token"
    assert not SecurityEvent.objects.filter(event_type="session.revoked").exists()
    assert app.refresh(use_next=False).status_code == 200  # the same token, honest evidence: accepted


@pytest.mark.parametrize("case", ["unknown-type", "signals-array", "signals-deeply-nested", "integrity-type-unknown"])
def test_malformed_evidence_at_enrollment_is_refused_and_the_code_stays_unused(iphone, case):
    forged_fields, description, reason = MALFORMED_FIELDS[case]
    pkce = make_pkce()
    code, _ = get_code(iphone.browser, iphone.client_id, pkce)
    binding = RequestBinding(challenge(iphone.client_id, "enroll"), iphone.client_id, "authorization_code",
                             grant_hash(code), dpop_jkt=iphone.jkt())
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "com.example.app:/oauth2redirect",
            "client_id": iphone.client_id, "code_verifier": pkce.verifier,
            **iphone.evidence(binding, "enroll"), **forged_fields}
    before = snapshot()
    response = form_post(HttpClient(), reverse("token"), data, **iphone.headers())
    assert_error(response, "invalid_client_attestation", description)
    assert snapshot() == before
    assert not DeviceSession.objects.exists() and not Device.objects.exists()
    assert AuthorizationCode.objects.get().used_at is None
    [event] = refused_events(reason)
    assert event.details["grant_type"] == "authorization_code"


# --- A16: evidence of the other platform -> device_mismatch, the family revoked --------------
def _cross_platform(victim: App, attacker: App) -> Any:
    """The attacker's own, genuine evidence (its enrolled device, its DPoP key) over the
    victim's refresh token."""
    value = challenge(victim.client_id, "refresh")
    attacker.refresh_token, attacker.next_challenge = victim.refresh_token, value
    return attacker.refresh(evidence=_genuine_evidence(attacker))


@pytest.mark.parametrize("victim_name,attacker_name", [("iphone", "pixel"), ("pixel", "iphone")],
                         ids=["android-key-on-ios", "appattest-on-android"])
def test_evidence_from_the_other_platform_revokes_the_family(request, victim_name, attacker_name):
    victim: App = request.getfixturevalue(victim_name)
    attacker: App = request.getfixturevalue(attacker_name)
    attacker.dpop = victim.dpop  # the thief also holds the DPoP key: only the device is wrong
    assert victim.login().status_code == 200
    assert attacker.login().status_code == 200
    victim_session, attacker_session = DeviceSession.objects.order_by("pk")
    assert victim_session.device is not None and attacker_session.device is not None
    assert victim_session.device.platform != attacker_session.device.platform
    tokens_before = list(RefreshToken.objects.order_by("pk").values_list("pk", "rotated_at", "revoked_at"))
    access_before = AccessToken.objects.count()
    devices_before = snapshot()["devices"]

    last_event = SecurityEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    response = _cross_platform(victim, attacker)
    recorded = set(SecurityEvent.objects.filter(id__gt=last_event).values_list("event_type", flat=True))
    # Refused on the platform before any verifier ran: ``ready_for_proof`` would also say
    # device_mismatch (a second line, which records ``attestation.assert``), so this is what
    # shows the first check (``device_binding.verify_refresh``) is the one that refused.
    assert recorded == {"attestation.token_refused", "session.revoked", "oauth.error"}
    assert_error(response, "invalid_grant", "Device attestation failed (device_mismatch); the session is revoked.")
    victim_session.refresh_from_db()
    attacker_session.refresh_from_db()
    assert victim_session.status == SessionStatus.REVOKED
    assert victim_session.status_reason == "attestation_device_mismatch"
    assert attacker_session.status == SessionStatus.ACTIVE
    assert AccessToken.objects.count() == access_before  # nothing issued
    assert snapshot()["devices"] == devices_before  # neither device touched (no counter advanced)
    for pk, rotated_at, _ in tokens_before:
        assert RefreshToken.objects.get(pk=pk).rotated_at == rotated_at  # none rotated
    [event] = refused_events("device_mismatch")
    assert event.session_id == victim_session.sid
    assert SecurityEvent.objects.filter(event_type="session.revoked", reason="attestation_device_mismatch").count() == 1
    victim.next_challenge = ""
    assert victim.refresh().json()["error"] == "invalid_grant"  # the family stays revoked
