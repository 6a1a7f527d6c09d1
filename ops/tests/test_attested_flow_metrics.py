"""Attestation and DPoP metrics after the real mobile flow against a live server: an iOS app
enrolls, refreshes with fresh assertions, a thief's device is refused, a request without a
DPoP proof is refused (docs/operations.md "Metrics")."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from simulator.demo_setup import IOS_APP_ID, ensure_attested_client
from simulator.ios import IOSDevice
from simulator.mobile_app import MobileApp

from .conftest import Deltas

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"
CLIENT_ID = "ops-attested"


def test_attestation_verdicts_and_refusals(issuer: str, settings: Any, django_user_model: Any) -> None:
    settings.ATTESTATION_ALLOW_TEST_ROOTS = True
    ensure_attested_client(CLIENT_ID)
    django_user_model.objects.create_user(username="ios-user", password=PASSWORD, email="ios@example.com")
    verdicts = Deltas(
        ("vigil_attestation_verdicts_total", {"platform": "ios", "kind": "enroll", "verdict": "ok", "reason": "none"}),
        ("vigil_attestation_verdicts_total", {"platform": "ios", "kind": "assert", "verdict": "ok", "reason": "none"}),
        ("vigil_tokens_issued_total", {"grant": "authorization_code", "client": CLIENT_ID}),
        ("vigil_refresh_total", {"outcome": "rotated", "reason": "none", "client": CLIENT_ID}),
        ("vigil_refresh_total", {"outcome": "refused", "reason": "attestation", "client": CLIENT_ID}),
        ("vigil_dpop_refusals_total", {"reason": "dpop_missing"}),
        # the thief's device signs with another key: its assertion fails, the refresh is refused
        ("vigil_attestation_verdicts_total",
         {"platform": "ios", "kind": "assert", "verdict": "failed", "reason": "signature_invalid"}),
        ("vigil_attestation_token_refusals_total", {"reason": "signature_invalid", "grant": "refresh_token"}),
    )
    app = MobileApp(issuer, CLIENT_ID, IOSDevice(IOS_APP_ID, environment="production"))
    assert app.login("ios-user", PASSWORD).status_code == 200
    for _ in range(2):
        assert app.refresh().status_code == 200
    thief = MobileApp(issuer, CLIENT_ID, IOSDevice(IOS_APP_ID, environment="production"), dpop_key=app.dpop_key)
    thief.refresh_token = app.refresh_token
    assert thief.refresh().json()["error"] == "invalid_client_attestation"
    no_proof = requests.post(f"{issuer}/token", data={"grant_type": "refresh_token", "client_id": CLIENT_ID,
                                                      "refresh_token": app.refresh_token}, timeout=10)
    assert no_proof.status_code == 400
    assert verdicts.gained() == [1, 2, 1, 2, 1, 1, 1, 1]

