"""Apple DeviceCheck use cases (docs/attestation.md §4 "DeviceCheck"): read the per-device
bits at an iOS enrollment, and set the abuse bit of a device an operator revoked.

Apple keeps two bits per physical device and developer team, across reinstalls of the app
(a reinstall makes a new App Attest key, so a new ``Device`` row: the bits are what ties it
to the old one). Vigil stores what it read in ``device.verdict["devicecheck"]``; device
health turns it into facts (``devicecheck_bit0`` ...) that the client's policy judges.

Every call records one ``attestation.devicecheck`` security event (``operation`` query or
update); a failure of Apple's API is also logged (``vigil.devicecheck``) and degrades as the
app says (``RegisteredApp.devicecheck_on_failure``): fail open enrolls with the bits unknown,
fail closed refuses with ``devicecheck_unavailable`` (503 at the token endpoint).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from core import crypto
from core.events import EventType, Outcome, record

from ..app_settings import app_settings
from ..apple.devicecheck import DeviceCheckClient, DeviceCheckError, DeviceCheckUnavailable, DeviceTokenInvalid
from ..errors import AttestationError, Reason
from ..models import AppleEnvironment, Device, DeviceCheckFailure, DeviceCheckMode, RegisteredApp

logger = logging.getLogger("vigil.devicecheck")
QUERY, UPDATE = "query", "update"
TOKEN_MISSING = "devicecheck_token_missing"


def client_for(app: RegisteredApp, **overrides: Any) -> DeviceCheckClient:
    """The client of ``app``'s team and environment, from the ``ATTESTATION_DEVICECHECK_*`` settings."""
    development = app.ios_environment == AppleEnvironment.DEVELOPMENT
    options: dict[str, Any] = {
        "team_id": app.ios_team_id,
        "key_id": app_settings.DEVICECHECK_KEY_ID,
        "signing_key_pem": app_settings.DEVICECHECK_SIGNING_KEY,
        "base_url": app_settings.DEVICECHECK_DEVELOPMENT_BASE_URL if development else app_settings.DEVICECHECK_BASE_URL,
        "timeout": app_settings.DEVICECHECK_TIMEOUT,
    }
    return DeviceCheckClient(**{**options, **overrides})


def encrypt_token(token: str) -> str:
    return crypto.encrypt(token.encode()) if token else ""


def _event(app: RegisteredApp, operation: str, reason: str, request: Any = None, *, outcome: Outcome | None = None,
           **details: Any) -> None:
    record(EventType.ATTESTATION_DEVICECHECK, outcome=outcome or (Outcome.FAILURE if reason else Outcome.SUCCESS),
           reason=reason, client_id=app.client.client_id, request=request, platform="ios", operation=operation,
           **details)


def check_enrollment(app: RegisteredApp, token: str, *, now: datetime, request: Any = None) -> dict[str, Any] | None:
    """Query the bits of the device that sent ``token`` (already verified as part of the
    attested binding). Returns what to store in ``verdict["devicecheck"]``, or None when
    DeviceCheck is off for the app or an optional token is absent. Raises ``AttestationError``:
    ``devicecheck_token_required``, ``devicecheck_token_invalid``, or (fail closed)
    ``devicecheck_unavailable``. Writes nothing but the event."""
    if app.devicecheck_mode not in (DeviceCheckMode.OPTIONAL, DeviceCheckMode.REQUIRED):
        return None  # off (or a value this version does not know)
    if not token:
        if app.devicecheck_mode == DeviceCheckMode.REQUIRED:
            _event(app, QUERY, Reason.DEVICECHECK_TOKEN_REQUIRED, request, outcome=Outcome.DENIED)
            raise AttestationError(Reason.DEVICECHECK_TOKEN_REQUIRED, "this app requires a DeviceCheck token")
        return None
    try:
        bits = client_for(app).query_two_bits(token)
    except DeviceTokenInvalid as exc:
        _event(app, QUERY, Reason.DEVICECHECK_TOKEN_INVALID, request, outcome=Outcome.DENIED, detail=exc.detail)
        raise AttestationError(Reason.DEVICECHECK_TOKEN_INVALID, exc.detail) from exc
    except DeviceCheckUnavailable as exc:
        return _degrade(app, exc, now, request)
    _event(app, QUERY, "", request, **bits.as_json())
    return {"status": "ok", **bits.as_json(), "checked_at": now.isoformat()}


def _degrade(app: RegisteredApp, exc: DeviceCheckUnavailable, now: datetime, request: Any) -> dict[str, Any]:
    fail_open = app.devicecheck_on_failure == DeviceCheckFailure.FAIL_OPEN
    degraded = "fail_open" if fail_open else "fail_closed"
    logger.warning("DeviceCheck query failed for %s (%s): %s", app.client.client_id, degraded, exc.detail)
    _event(app, QUERY, Reason.DEVICECHECK_UNAVAILABLE, request,
           outcome=Outcome.FAILURE if fail_open else Outcome.DENIED, degraded=degraded, status=exc.status,
           detail=exc.detail)
    if not fail_open:
        raise AttestationError(Reason.DEVICECHECK_UNAVAILABLE, exc.detail) from exc
    return {"status": "unavailable", "checked_at": now.isoformat()}


def flag_device(device: Device, *, bit: int, now: datetime) -> bool:
    """Set ``bit`` at Apple for the physical device behind ``device``'s last DeviceCheck token
    and remember when Apple confirmed it. Idempotent (a flagged device is not sent again).
    Returns True once flagged, False when it cannot be (no token, or Apple refuses it: the
    token is then dropped, the flag stays pending in the admin and is not tried again).
    ``DeviceCheckUnavailable`` is raised for the caller (a Celery task) to retry."""
    app = device.app
    if device.devicecheck_flagged_at is not None:
        return True
    token = device.devicecheck_token()
    if not token:
        _event(app, UPDATE, TOKEN_MISSING, outcome=Outcome.FAILURE, device=device.pk, bit=bit)
        return False
    try:
        client_for(app).update_two_bits(token, **{f"bit{bit}": True})
    except DeviceTokenInvalid as exc:  # final (a stale token stays refused): forget it, so no sweep sends it again
        Device.objects.filter(pk=device.pk).update(devicecheck_token_encrypted="")
        device.devicecheck_token_encrypted = ""
        _event(app, UPDATE, Reason.DEVICECHECK_TOKEN_INVALID, outcome=Outcome.FAILURE, device=device.pk, bit=bit,
               detail=exc.detail)
        return False
    except DeviceCheckError as exc:
        logger.warning("DeviceCheck update failed for device %s: %s", device.pk, exc.detail)
        _event(app, UPDATE, Reason.DEVICECHECK_UNAVAILABLE, device=device.pk, bit=bit, status=exc.status,
               detail=exc.detail)
        raise
    Device.objects.filter(pk=device.pk).update(devicecheck_flagged_at=now)
    device.devicecheck_flagged_at = now
    _event(app, UPDATE, "", device=device.pk, bit=bit)
    return True
