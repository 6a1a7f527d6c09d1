"""The attested demo client: a public mobile client whose iOS and Android apps are the
simulators' (trusted only with ATTESTATION_ALLOW_TEST_ROOTS, a development setting)."""

from __future__ import annotations

import base64
from typing import Any

from attestation.flows.register_apps import register_android_app, register_ios_app
from attestation.testing import google_pki
from clients.flows.registration import register_client
from clients.models import Client

from .android import AndroidDevice
from .ios import IOSDevice

IOS_APP_ID = "ABCDE12345.com.example.vigil"
UNATTESTED_CLIENT_ID = "vigil-demo-unattested"
REDIRECT_URI = "com.example.vigil:/oauthredirect"


def ensure_attested_client(client_id: str, *, require_mfa: bool = False) -> Client:
    """Create (once) a public client requiring attestation and DPoP for both simulators."""
    existing = Client.objects.filter(client_id=client_id).first()
    if existing is not None:
        return existing
    client = register_client(
        name="Vigil attested demo app", public=True, client_id=client_id, redirect_uris=[REDIRECT_URI],
        first_party=True, require_mfa=require_mfa, require_dpop=True,
    ).client
    register_ios_app(client, IOS_APP_ID, "production", require_attestation=True)
    decryption, verification = google_pki.play_keys_b64()
    register_android_app(
        client, google_pki.TEST_PACKAGE, [base64.b64encode(google_pki.TEST_SIGNING_DIGEST).decode()],
        require_attestation=True, decryption_key_b64=decryption, verification_key_b64=verification,
    )
    return client


def ensure_devicecheck_client(client_id: str) -> Client:
    """Create (once) a public client whose iOS app requires an Apple DeviceCheck token at
    enrollment and fails closed (simulator/scenarios/devicecheck_reinstall.py). Apple is
    whatever ``ATTESTATION_DEVICECHECK_*`` names: the local stand-in in development."""
    existing = Client.objects.filter(client_id=client_id).first()
    if existing is not None:
        return existing
    client = register_client(
        name="Vigil DeviceCheck demo app", public=True, client_id=client_id, redirect_uris=[REDIRECT_URI],
        first_party=True, require_dpop=True,
    ).client
    register_ios_app(client, IOS_APP_ID, "production", require_attestation=True, devicecheck="required",
                     devicecheck_on_failure="fail_closed")
    return client


def ensure_unattested_client(client_id: str = UNATTESTED_CLIENT_ID) -> Client:
    """Create (once) a client like the attested one whose apps also take devices that cannot
    attest (the fallback, docs/unattested-devices.md; ``simulator.scenarios.unattested_device``)."""
    existing = Client.objects.filter(client_id=client_id).first()
    if existing is not None:
        return existing
    client = ensure_attested_client(client_id)
    client.registered_apps.update(allow_unattested_devices=True)  # publishes the change (ConfigQuerySet)
    return client


def devices() -> dict[str, Any]:
    return {"ios": IOSDevice(IOS_APP_ID, environment="production"), "android": AndroidDevice()}
