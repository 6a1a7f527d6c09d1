"""What the mobile guides (docs/mobile/ios.md, android.md) tell an app to do after a refusal or a
lost answer, done at the real token endpoint: the advice must work, and the refused attempt must
change nothing.

* ``use_dpop_nonce``: the same form (same challenge, same evidence) with a new proof carrying the
  nonce goes through: the proof is checked before the evidence ("Nonces", section 2).
* A refresh whose answer was lost: the same refresh token, a new challenge from the endpoint, new
  evidence and a new proof give back the same successor (section 8).
* Resending a used challenge is refused with a fresh one and changes nothing (section 8); it is
  recorded, not counted as an attestation failure.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client as HttpClient
from django.urls import reverse

from attestation.binding import RequestBinding, grant_hash
from idp.tests.conftest import browser, form_post, mobile_client, user  # noqa: F401
from sessions.dpop.client import create_proof
from sessions.models import DeviceSession, RefreshToken, SessionStatus
from sessions.tests.test_device_bound_tokens import HEADER, App, android_app, challenge, ios_app, iphone, pixel  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]

TOKEN_URL = f"{django_settings.IDP_ISSUER}/token"


def refresh_form(app: App, value: str) -> dict[str, str]:
    binding = RequestBinding(value, app.client_id, "refresh_token", grant_hash(app.refresh_token), dpop_jkt=app.jkt())
    return {"grant_type": "refresh_token", "refresh_token": app.refresh_token, "client_id": app.client_id,
            **app.evidence(binding, "refresh")}


def post(form: dict[str, str], app: App, nonce: str | None = None) -> Any:
    proof = create_proof(app.dpop, method="POST", url=TOKEN_URL, nonce=nonce)  # type: ignore[arg-type]
    return form_post(HttpClient(), reverse("token"), form, HTTP_DPOP=proof)


@pytest.mark.parametrize("platform", ["iphone", "pixel"])
def test_after_use_dpop_nonce_the_same_evidence_goes_through_with_a_nonce(
    platform: str, request: pytest.FixtureRequest, settings: Any
) -> None:
    app: App = request.getfixturevalue(platform)
    assert app.login().status_code == 200
    settings.SESSIONS_DPOP_NONCE_REQUIRED = True
    form = refresh_form(app, app.next_challenge)
    tokens_before = RefreshToken.objects.count()

    refused = post(form, app)
    assert refused.status_code == 400 and refused.json()["error"] == "use_dpop_nonce"
    assert RefreshToken.objects.count() == tokens_before  # nothing rotated

    retried = post(form, app, nonce=refused["DPoP-Nonce"])
    assert retried.status_code == 200, retried.content
    assert retried.json()["refresh_token"] != app.refresh_token


@pytest.mark.parametrize("platform", ["iphone", "pixel"])
def test_a_lost_refresh_answer_is_retried_with_new_evidence_and_gets_the_same_successor(
    platform: str, request: pytest.FixtureRequest
) -> None:
    app: App = request.getfixturevalue(platform)
    assert app.login().status_code == 200
    first = post(refresh_form(app, app.next_challenge), app)  # its answer is "lost"
    assert first.status_code == 200
    successor = first.json()["refresh_token"]

    # The guide: same refresh token, a challenge from the endpoint (the lost answer held the
    # next one), new evidence over it, a new proof.
    again = post(refresh_form(app, challenge(app.client_id, "refresh")), app)
    assert again.status_code == 200, again.content
    assert again.json()["refresh_token"] == successor
    assert again[HEADER]
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE


def test_resending_a_used_challenge_is_refused_and_the_token_stays_good(iphone: App) -> None:  # noqa: F811
    assert iphone.login().status_code == 200
    used = iphone.next_challenge
    answer = post(refresh_form(iphone, used), iphone)
    assert answer.status_code == 200
    iphone.refresh_token = answer.json()["refresh_token"]
    tokens_before = RefreshToken.objects.count()

    resent = post(refresh_form(iphone, used), iphone)
    assert resent.json()["error"] == "use_attestation_challenge"
    assert "challenge_reused" in resent.json()["error_description"] and resent[HEADER]
    assert RefreshToken.objects.count() == tokens_before

    fresh = post(refresh_form(iphone, resent[HEADER]), iphone)  # the header's challenge: accepted
    assert fresh.status_code == 200, fresh.content
