"""The Android simulator against a live server: challenges over HTTP, enrollment with a Key
Attestation chain + standard Play Integrity token (decoded by the local Google stand-in),
then refreshes signed by the attested key, from the wire parameters."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from attestation.binding import RequestBinding, grant_hash
from attestation.errors import AttestationError, Reason
from attestation.flows.android_devices import enroll_android_device, verify_android_refresh
from attestation.models import Device, Platform, RegisteredApp
from attestation.testing import google_pki as g
from simulator.android import AndroidDevice

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("allow_test_roots")]


@pytest.fixture
def android_app(oauth_client: Any) -> RegisteredApp:
    app = RegisteredApp.objects.create(
        client=oauth_client,
        platform=Platform.ANDROID,
        android_package_name=g.TEST_PACKAGE,
        android_signing_cert_digests=[g.TEST_SIGNING_DIGEST.hex()],
        min_integrity_level="strong",
    )
    app.set_play_integrity_keys(*(base64.b64decode(k) for k in g.play_keys_b64()))
    app.save()
    return app


def fetch_challenge(base_url: str, client_id: str, purpose: str) -> str:
    response = httpx.post(f"{base_url}/attestation/challenge", data={"client_id": client_id, "purpose": purpose})
    assert response.status_code == 200, response.text
    return response.json()["attestation_challenge"]


def test_android_simulator_enrolls_and_refreshes_against_a_live_server(
    live_server: Any, android_app: RegisteredApp, google: g.GoogleStandIn
) -> None:
    phone = AndroidDevice(google=google, security_level="StrongBox")
    client_id = android_app.client.client_id

    binding = RequestBinding(
        fetch_challenge(live_server.url, client_id, "enroll"), client_id, "authorization_code", grant_hash("code-1")
    )
    params = phone.enrollment_params(binding)
    assert params["attestation_type"] == "android-key"
    device = enroll_android_device(
        android_app,
        params["attestation"],
        params["integrity_token"],
        binding,
        integrity_token_type=params["integrity_token_type"],
    )
    assert device.security_level == "strongbox"

    for n, kind in enumerate(("standard", "classic", "standard")):
        binding = RequestBinding(
            fetch_challenge(live_server.url, client_id, "refresh"),
            client_id,
            "refresh_token",
            grant_hash(f"refresh-{n}"),
        )
        params = phone.refresh_params(binding, integrity=kind)
        verify_android_refresh(
            device,
            params["client_data_signature"],
            params["integrity_token"],
            binding,
            integrity_token_type=params["integrity_token_type"],
        )
    assert Device.objects.get().last_asserted_at is not None
    assert sum(path.endswith(":decodeIntegrityToken") for _, path, _ in google.requests) == 3

    # the refresh token moved to another device: its key never was attested
    thief = AndroidDevice(google=google)
    binding = RequestBinding(
        fetch_challenge(live_server.url, client_id, "refresh"), client_id, "refresh_token", grant_hash("refresh-3")
    )
    params = thief.refresh_params(binding)
    with pytest.raises(AttestationError) as info:
        verify_android_refresh(device, params["client_data_signature"], params["integrity_token"], binding)
    assert info.value.reason == Reason.SIGNATURE_INVALID
