"""Issue 5 §4 on PostgreSQL: 20+ concurrent refreshes of one device-bound refresh token, each
with its own fresh attestation, leave exactly one live successor and one live family."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from attestation.binding import RequestBinding, grant_hash
from core.crypto import token_digest
from idp.tests.conftest import form_post
from sessions.models import DeviceSession, RefreshToken, SessionStatus
from tests.concurrency import run_concurrently

from .test_device_bound_tokens import App, android_app, challenge, ios_app, iphone, pixel  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("allow_test_roots")]


def test_concurrent_attested_refreshes_leave_one_live_successor(pixel: App) -> None:
    """Android: every one of the 20 attestations is valid (key signatures carry no counter;
    concurrent App Attest assertions would race on their counters and count as failures)."""
    app = pixel
    assert app.login().status_code == 200
    presented = app.refresh_token
    requests_ = []
    for _ in range(20):
        binding = RequestBinding(challenge(app.client_id, "refresh"), app.client_id, "refresh_token",
                                 grant_hash(presented), dpop_jkt=app.jkt())
        requests_.append((app.evidence(binding, "refresh"), app.headers()))

    def attempt(_: int) -> Any:
        evidence, headers = requests_.pop()
        data = {"grant_type": "refresh_token", "refresh_token": presented, "client_id": app.client_id, **evidence}
        return form_post(HttpClient(), reverse("token"), data, **headers)

    responses = run_concurrently(20, attempt)
    winners = [r.json()["refresh_token"] for r in responses if r.status_code == 200]
    assert winners, [(r.status_code, r.content[:200]) for r in responses if "counter_not_increasing" not in r.content.decode()]
    assert all(r.json()["error"] in {"invalid_client_attestation", "invalid_grant"} for r in responses if r.status_code != 200)
    session = DeviceSession.objects.get()
    assert session.status == SessionStatus.ACTIVE
    live = RefreshToken.objects.filter(session=session, rotated_at__isnull=True, revoked_at__isnull=True)
    assert live.count() == 1
    assert {t.token_hash for t in live} <= {token_digest(w) for w in winners}
