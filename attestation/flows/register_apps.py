"""Registering a client's mobile apps and attestation policy (admin, `create_client`)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from core.events import EventType, record

from ..android.digests import normalise_digest
from ..models import AppleEnvironment, DeviceCheckFailure, DeviceCheckMode, Platform, RegisteredApp


class AppRegistrationError(ValueError):
    """The app description is not usable (wrong App ID form, bad base64...)."""


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AppRegistrationError(f"{what} is not valid base64") from exc


def stored_digest(value: str) -> str:
    """A signing-certificate SHA-256 given as hex (colons allowed), base64 or base64url,
    stored as base64 (docs/attestation.md §5); by the registration command and the admin."""
    try:
        return base64.b64encode(normalise_digest(value)).decode()
    except ValueError as exc:
        raise AppRegistrationError(
            "a signing certificate digest is the SHA-256 of the certificate as hex, base64 or base64url (32 bytes)"
        ) from exc


def register_ios_app(client: Any, app_id: str, environment: str, *, require_attestation: bool,
                     devicecheck: str = DeviceCheckMode.OFF,
                     devicecheck_on_failure: str = DeviceCheckFailure.FAIL_CLOSED,
                     allow_unattested: bool = False) -> RegisteredApp:
    team, _, bundle = app_id.partition(".")
    if devicecheck not in DeviceCheckMode.values or devicecheck_on_failure not in DeviceCheckFailure.values:
        raise AppRegistrationError("DeviceCheck is off, optional or required; on failure fail_open or fail_closed")
    if len(team) != 10 or not team.isalnum() or not bundle:
        raise AppRegistrationError("the iOS App ID must be TEAMID.bundle.id with a 10-character team id")
    if environment not in AppleEnvironment.values:
        raise AppRegistrationError("the App Attest environment must be development or production")
    app = RegisteredApp.objects.create(
        client=client, platform=Platform.IOS, ios_team_id=team, ios_bundle_id=bundle,
        ios_environment=environment, require_attestation=require_attestation,
        devicecheck_mode=devicecheck, devicecheck_on_failure=devicecheck_on_failure,
        allow_unattested_devices=allow_unattested,
    )
    record(EventType.ATTESTATION_APP_REGISTERED, client_id=client.client_id, platform="ios", app_id=app_id,
           devicecheck=devicecheck, devicecheck_on_failure=devicecheck_on_failure)
    return app


def register_android_app(
    client: Any,
    package: str,
    cert_digests: list[str],
    *,
    require_attestation: bool,
    decryption_key_b64: str | None = None,
    verification_key_b64: str | None = None,
    min_integrity: str = "device",
    max_age_minutes: int = 0,
    allow_unattested: bool = False,
) -> RegisteredApp:
    if not cert_digests:
        raise AppRegistrationError(
            "an Android app needs at least one signing certificate digest (--android-cert-digest)"
        )
    app = RegisteredApp(
        client=client, platform=Platform.ANDROID, android_package_name=package,
        android_signing_cert_digests=[stored_digest(d) for d in cert_digests], require_attestation=require_attestation,
        min_integrity_level=min_integrity, play_integrity_max_age_minutes=max_age_minutes,
        allow_unattested_devices=allow_unattested,
    )
    if decryption_key_b64 or verification_key_b64:
        if not (decryption_key_b64 and verification_key_b64):
            raise AppRegistrationError("give both Play Integrity keys, or neither")
        app.set_play_integrity_keys(
            _b64(decryption_key_b64, "the decryption key"), _b64(verification_key_b64, "the verification key")
        )
    app.save()
    record(EventType.ATTESTATION_APP_REGISTERED, client_id=client.client_id, platform="android", package=package)
    return app
