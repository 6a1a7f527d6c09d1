"""A device cannot choose an outage with Google's refusals either (attestation/android/google_errors.py):
another Cloud project's Play Integrity token is the device's failure at the token endpoint, counted
until the family is revoked, while a refusal of our configuration is a 503 that counts against no
device and leaves the refresh token usable."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from attestation.binding import RequestBinding, grant_hash
from attestation.models import DeviceStatus
from attestation.testing import google_pki as g
from attestation.testing.google_pki import DecodeError
from core.models import SecurityEvent
from sessions.models import DeviceSession, RefreshToken, SessionStatus

from .test_device_bound_tokens import HEADER, App, android_app, challenge, pixel  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]


def tokens() -> list[Any]:
    return list(RefreshToken.objects.order_by("pk").values_list("pk", "rotated_at", "revoked_at"))


def refused_reasons() -> list[str]:
    return list(SecurityEvent.objects.filter(event_type="attestation.token_refused").values_list("reason", flat=True))


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "vigil.play_integrity" and r.levelno == logging.ERROR]


def untouched(pixel: App, presented: str, before: list[Any]) -> None:
    """Nothing changed: the same refresh token, no row rotated or revoked, the session and device active."""
    assert pixel.refresh_token == presented and tokens() == before
    session = DeviceSession.objects.get()
    assert session.status == SessionStatus.ACTIVE
    assert session.device is not None and session.device.status == DeviceStatus.ACTIVE
    assert not SecurityEvent.objects.filter(event_type="session.revoked").exists()


def foreign_refresh(pixel: App, google: g.GoogleStandIn, n: int) -> Any:
    """A refresh whose standard token Google refuses as another Cloud project's."""
    binding = RequestBinding(challenge(pixel.client_id, "refresh"), pixel.client_id, "refresh_token",
                             grant_hash(pixel.refresh_token), dpop_jkt=pixel.jkt())
    evidence = {**pixel.device.refresh_params(binding, integrity=None), "integrity_token_type": "standard",
                "integrity_token": google.refuse(f"another-projects-token-{n}", DecodeError.FOREIGN_TOKEN)}
    return pixel.refresh(evidence=evidence)


def test_another_projects_token_counts_until_the_family_is_revoked(
    pixel: App, google: g.GoogleStandIn, settings: Any
) -> None:
    """The enrollment's standard token decoded: these credentials work for the package, so
    Google's "not authorized to decode" is the token the device chose. Each refusal is
    ``integrity_token_invalid``, counted; nothing else changes until the limit revokes."""
    settings.SESSIONS_ATTESTATION_MAX_FAILURES = 3
    assert pixel.login().status_code == 200
    presented, before = pixel.refresh_token, tokens()
    for n in range(2):
        response = foreign_refresh(pixel, google, n)
        assert response.status_code == 400 and response.json()["error"] == "invalid_client_attestation"
        assert "integrity_token_invalid" in response.json()["error_description"] and response[HEADER]
        untouched(pixel, presented, before)
    final = foreign_refresh(pixel, google, 2)
    assert final.status_code == 400 and final.json()["error"] == "invalid_grant"
    assert refused_reasons() == ["integrity_token_invalid"] * 3
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert all(revoked for _, _, revoked in tokens())
    assert pixel.refresh(use_next=False).json()["error"] == "invalid_grant"


@pytest.mark.parametrize("error", [DecodeError.SERVICE_DISABLED, DecodeError.IAM_PERMISSION_DENIED,
                                   DecodeError.SCOPE_INSUFFICIENT], ids=lambda e: e.name)
def test_a_configuration_refusal_is_a_503_that_counts_against_nothing(
    pixel: App, google: g.GoogleStandIn, settings: Any, caplog: pytest.LogCaptureFixture, error: Any
) -> None:
    """More refreshes than either failure limit allows: each a 503 with Retry-After and a fresh
    challenge, recorded, counted in no streak, logged for the operator; the same refresh token
    works once the configuration is fixed."""
    settings.SESSIONS_ATTESTATION_MAX_FAILURES = 2
    settings.SESSIONS_RISK_ATTESTATION_STREAK = 2
    settings.ATTESTATION_PLAY_INTEGRITY_RETRY_AFTER = 17
    assert pixel.login().status_code == 200
    presented, before = pixel.refresh_token, tokens()
    google.decode_fails_with = error
    with caplog.at_level(logging.ERROR, logger="vigil.play_integrity"):
        for _ in range(3):
            response = pixel.refresh(use_next=False)
            assert response.status_code == 503, response.content
            assert response.json()["error"] == "temporarily_unavailable"
            assert "integrity_api_unavailable" in response.json()["error_description"]
            assert response["Retry-After"] == "17" and response[HEADER]
    untouched(pixel, presented, before)
    assert refused_reasons() == ["integrity_api_unavailable"] * 3
    assert not SecurityEvent.objects.filter(event_type="risk.signal", reason="attestation_failures").exists()
    assert len(logged(caplog)) == 3 and all(g.TEST_PACKAGE in message for message in logged(caplog))

    google.decode_fails_with = None
    assert pixel.refresh(use_next=False).status_code == 200


def test_credentials_of_another_project_are_an_outage_not_every_users_failure(
    pixel: App, google: g.GoogleStandIn, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator deploys the key of a service account of another Cloud project: Google answers
    every token as a device's foreign one. No token of the package has decoded with these
    credentials, so it is the configuration's: 503s, counted against no device, and the log says
    what to fix."""
    settings.SESSIONS_ATTESTATION_MAX_FAILURES = 2
    assert pixel.login().status_code == 200
    presented, before = pixel.refresh_token, tokens()
    working = settings.ATTESTATION_PLAY_INTEGRITY_CREDENTIALS
    settings.ATTESTATION_PLAY_INTEGRITY_CREDENTIALS = json.dumps(
        {**google.credentials(), "client_email": "vigil@another-project.iam.gserviceaccount.com"})
    google.decode_fails_with = DecodeError.FOREIGN_TOKEN
    with caplog.at_level(logging.ERROR, logger="vigil.play_integrity"):
        assert [pixel.refresh(use_next=False).status_code for _ in range(3)] == [503, 503, 503]
    untouched(pixel, presented, before)
    assert refused_reasons() == ["integrity_api_unavailable"] * 3
    message = logged(caplog)[-1]
    assert "vigil@another-project.iam.gserviceaccount.com" in message
    assert "belongs to the Cloud project linked to this package in Play Console" in message

    settings.ATTESTATION_PLAY_INTEGRITY_CREDENTIALS, google.decode_fails_with = working, None
    assert pixel.refresh(use_next=False).status_code == 200
