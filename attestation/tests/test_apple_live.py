"""The iOS simulator against a live server: it fetches challenges over HTTP, enrolls, then asserts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from attestation.binding import RequestBinding, grant_hash
from attestation.encoding import b64decode_any
from attestation.flows.devices import assert_apple_device, enroll_apple_device
from attestation.models import Device, RegisteredApp
from simulator.ios import IOSDevice

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("allow_test_roots")]


def fetch_challenge(base_url: str, client_id: str, purpose: str) -> str:
    response = httpx.post(f"{base_url}/attestation/challenge", data={"client_id": client_id, "purpose": purpose})
    assert response.status_code == 200, response.text
    value = response.json()["attestation_challenge"]
    assert response.headers["OAuth-Client-Attestation-Challenge"] == value
    return value


def test_simulator_enrolls_and_asserts_against_a_live_server(live_server: Any, ios_app: RegisteredApp) -> None:
    phone = IOSDevice(ios_app.app_id, environment="production")
    client_id = ios_app.client.client_id

    challenge = fetch_challenge(live_server.url, client_id, "enroll")
    binding = RequestBinding(challenge, client_id, "authorization_code", grant_hash("code-123"))
    params = phone.enrollment_params(binding)
    assert params["attestation_type"] == "apple-appattest"
    device = enroll_apple_device(ios_app, b64decode_any(params["attestation"]), binding)
    assert device.key_id == phone.key_id_b64

    for expected in (1, 2):
        challenge = fetch_challenge(live_server.url, client_id, "refresh")
        binding = RequestBinding(challenge, client_id, "refresh_token", grant_hash(f"refresh-{expected}"))
        params = phone.assertion_params(binding)
        device = assert_apple_device(device, b64decode_any(params["attestation"]), binding)
        assert device.counter == expected
    assert Device.objects.get().counter == 2


def test_live_challenge_endpoint_refuses_unknown_client(live_server: Any) -> None:
    response = httpx.post(f"{live_server.url}/attestation/challenge", json={"client_id": "nobody", "purpose": "enroll"})
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "error_description": "unknown or inactive client"}
