"""The fallback for devices that cannot attest (docs/unattested-devices.md): enroll with the
DPoP key only.

A registered app with ``allow_unattested_devices`` accepts, at the code exchange, a device
that says it cannot attest (``attestation_type=none``, its platform and why). Nothing about
such a device is verified but that the request holds the private DPoP key: the device is
stored as *unattested* (``Device.attested = False``, ``security_level = none``), its key id
is the DPoP key's RFC 7638 thumbprint, and the health policy decides what it gets (the
``unattested`` condition: reduced access by default). The ``enroll`` challenge is redeemed
once all the same: the flow keeps the attested flow's shape (challenge, then token request)
and the challenge endpoint's per-address rate, though no signature covers it.

An iOS app whose registered app checks Apple DeviceCheck (``devicecheck_mode`` optional or
required) is checked here too: a phone flagged for abuse must not come back through the
fallback after a reinstall. No attested binding covers the token on this path, so it proves
less than on the attested one (docs/unattested-devices.md: a token taken from another
iPhone of the attacker's would read that phone's bits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

from core.events import EventType

from ..errors import AttestationError, Reason
from ..models import ChallengePurpose, Device, Platform, RegisteredApp, SecurityLevel
from .challenges import claim_challenge
from .devicecheck import check_enrollment, encrypt_token
from .registry import device_event

#: The ``attestation_type`` of the fallback.
UNATTESTED_TYPE = "none"


class UnavailableReason(StrEnum):
    """Why the app cannot attest (``attestation_unavailable_reason``): stored and shown, never trusted."""

    NOT_SUPPORTED = "not_supported"  # DCAppAttestService.isSupported false; no hardware attestation (Android < 8)
    SERVICE_UNAVAILABLE = "service_unavailable"  # the platform API failed (App Attest server, KeyStore error)
    EMULATOR = "emulator"  # a simulator or emulator (development)
    OTHER = "other"


@dataclass(frozen=True)
class UnattestedClaim:
    """What an app that cannot attest says about itself (nothing of it is verified)."""

    platform: str
    reason: str


def parse_claim(platform: str, reason: str) -> UnattestedClaim:
    """``attestation_platform`` and ``attestation_unavailable_reason``, both required."""
    if platform not in Platform.values or reason not in UnavailableReason.__members__.values():
        raise AttestationError(
            Reason.UNATTESTED_PARAMETERS_INVALID,
            "attestation_type=none needs attestation_platform (ios|android) and attestation_unavailable_reason "
            f"({'|'.join(UnavailableReason)})",
        )
    return UnattestedClaim(platform, reason)


def allows_unattested(app: RegisteredApp | None) -> bool:
    return app is not None and app.allow_unattested_devices


def enroll_unattested_device(
    app: RegisteredApp,
    claim: UnattestedClaim,
    *,
    challenge: str,
    dpop_jkt: str,
    dpop_jwk: dict[str, Any] | None,
    now: datetime,
    request: HttpRequest | None = None,
    devicecheck_token: str = "",
) -> Device:
    """Register (or recognise) the unattested device of this DPoP key; ``app`` must allow it.
    An iPhone's DeviceCheck bits are read as at an attested enrollment (``check_enrollment``)."""
    client_id = app.client.client_id
    try:
        if not dpop_jkt:
            raise AttestationError(Reason.UNATTESTED_DPOP_REQUIRED, "the DPoP key is the device key: send a proof")
        claim_challenge(challenge, client_id=client_id, purpose=ChallengePurpose.ENROLL, now=now)
        devicecheck = _devicecheck(app, claim, devicecheck_token, now, request)
        device, created = _store(app, claim, dpop_jkt, _pem(dpop_jwk), now, devicecheck, devicecheck_token)
    except AttestationError as exc:
        device_event(EventType.ATTESTATION_ENROLL, exc.reason, client_id, request, platform=claim.platform,
                     attested=False, detail=exc.detail)
        raise
    device_event(EventType.ATTESTATION_ENROLL, "", client_id, request, platform=claim.platform, attested=False,
                 key_id=device.key_id, device=device.pk, created=created, unavailable_reason=claim.reason)
    return device


def _pem(jwk: dict[str, Any] | None) -> str:
    if not jwk:
        return ""
    try:
        key = JWKRegistry.import_key(jwk)
        pem = key.as_pem(private=False) if isinstance(key, (ECKey, RSAKey, OKPKey)) else b""
    except (JoseError, ValueError, TypeError):  # verified by the DPoP check already: keep it as JSON
        return json.dumps(jwk, sort_keys=True)
    return pem.decode() if isinstance(pem, bytes) else str(pem)


def _devicecheck(app: RegisteredApp, claim: UnattestedClaim, token: str, now: datetime,
                 request: HttpRequest | None) -> dict[str, Any] | None:
    """The iPhone's DeviceCheck bits where the iOS app checks them (off: None; Android: never)."""
    if claim.platform != Platform.IOS or app.platform != Platform.IOS:
        return None
    return check_enrollment(app, token, now=now, request=request)


def _store(app: RegisteredApp, claim: UnattestedClaim, jkt: str, pem: str, now: datetime,
           devicecheck: dict[str, Any] | None = None, token: str = "") -> tuple[Device, bool]:
    """A new unattested device, or the known one of this key (still usable, still unattested)."""
    verdict: dict[str, Any] = {"unattested": {"reason": claim.reason}}
    extra: dict[str, Any] = {}
    if devicecheck is not None:
        verdict["devicecheck"] = devicecheck
        extra["devicecheck_token_encrypted"] = encrypt_token(token)
    try:
        with transaction.atomic():
            device = Device.objects.create(
                platform=claim.platform, app=app, key_id=jkt, public_key=pem, security_level=SecurityLevel.NONE,
                attested=False, verdict=verdict, first_attested_at=now, last_attested_at=now, **extra,
            )
            return device, True
    except IntegrityError:
        pass
    device = Device.objects.get(app=app, key_id=jkt)
    device.check_usable()
    if device.attested:  # cannot happen (a thumbprint is no attested key id); never downgrade one
        raise AttestationError(Reason.UNATTESTED_NOT_ALLOWED, "this key belongs to an attested device")
    # A fresh enrollment is all the re-attestation such a device can give (as store_attested).
    extra.update(requires_reattestation=False, reattestation_required_at=None)
    Device.objects.filter(pk=device.pk).update(verdict=verdict, last_attested_at=now, **extra)
    device.verdict, device.last_attested_at = verdict, now
    for name, value in extra.items():
        setattr(device, name, value)
    return device, False
