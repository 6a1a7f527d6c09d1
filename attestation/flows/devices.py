"""Device registry use cases for iOS: enroll with an App Attest attestation, then assert.

Both flows redeem the binding's challenge (enroll: purpose ``enroll``; assert: ``refresh``)
before any cryptography, so a challenge is burnt whatever the outcome, and record one
security event per decision (``attestation.enroll`` / ``attestation.assert``). Every
failure raises ``AttestationError`` with a stable reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from core.deferred_write import DeferredWrite
from core.events import EventType
from core.models import SecurityEvent
from core.sql import Statement

from ..apple.assertion import verify_assertion
from ..apple.attestation import AppleAttestationResult, verify_attestation
from ..binding import RequestBinding
from ..errors import AttestationError, Reason
from ..models import ChallengePurpose, Device, DeviceStatus, Platform, RegisteredApp, SecurityLevel
from .challenges import claim_challenge
from .devicecheck import check_enrollment, encrypt_token
from .registry import device_event, ready_for_proof, store_attested, write_alone


def _require(ok: bool, reason: str, detail: str = "") -> None:
    if not ok:
        raise AttestationError(reason, detail)


def enroll_apple_device(
    app: RegisteredApp,
    attestation_bytes: bytes,
    binding: RequestBinding,
    *,
    now: datetime | None = None,
    purpose: str = ChallengePurpose.ENROLL,
    request: HttpRequest | None = None,
    devicecheck_token: str = "",
) -> Device:
    """Verify an App Attest attestation over ``binding`` and register (or recognise) the device.
    With DeviceCheck on for the app, the bits of ``devicecheck_token`` (bound into ``binding``)
    are read from Apple after the attestation verified and before anything is stored."""
    now = now or timezone.now()
    client_id = app.client.client_id
    try:
        _require(app.platform == Platform.IOS, Reason.DEVICE_MISMATCH, "app is not an iOS app")
        _require(binding.client_id == client_id, Reason.DEVICE_MISMATCH, "binding is for another client")
        claim_challenge(binding.challenge, client_id=client_id, purpose=purpose, now=now)
        result = verify_attestation(
            attestation_bytes,
            app_id=app.app_id,
            environment=app.ios_environment,
            client_data_hash=binding.client_data_hash(),
            now=now,
        )
        devicecheck = check_enrollment(app, devicecheck_token, now=now, request=request)
        device, created = _store_apple_device(app, result, now, devicecheck, devicecheck_token)
    except AttestationError as exc:
        _event(EventType.ATTESTATION_ENROLL, exc.reason, client_id, request, detail=exc.detail)
        raise
    _event(
        EventType.ATTESTATION_ENROLL, "", client_id, request, key_id=device.key_id, device=device.pk, created=created
    )
    return device


def _store_apple_device(app: RegisteredApp, result: AppleAttestationResult, now: datetime,
                        devicecheck: dict[str, Any] | None, token: str) -> tuple[Device, bool]:
    verdict = {**result.facts, "devicecheck": devicecheck} if devicecheck is not None else result.facts
    fields: dict[str, Any] = {"public_key": result.public_key_pem, "verdict": verdict, "receipt": result.receipt}
    if devicecheck is not None:
        fields["devicecheck_token_encrypted"] = encrypt_token(token)
    return store_attested(
        app,
        platform=Platform.IOS,
        key_id=result.key_id_b64,
        now=now,
        fields=fields,
        security_level=SecurityLevel.SECURE_ENCLAVE,
    )


def assert_apple_device(
    device: Device,
    assertion_bytes: bytes,
    binding: RequestBinding,
    *,
    now: datetime | None = None,
    purpose: str = ChallengePurpose.REFRESH,
    request: HttpRequest | None = None,
    deferred: list[DeferredWrite] | None = None,
) -> Device:
    """Verify an App Attest assertion over ``binding`` with the stored key; advance the counter
    atomically (``UPDATE … WHERE counter < new``). Returns the device with its new counter.
    Given ``deferred``, the counter's write is appended to it for the caller's own statement
    (``core.deferred_write``) instead of run here; its success event is then held until then."""
    now = now or timezone.now()
    client_id = device.app.client.client_id
    try:
        ready_for_proof(device, binding, platform=Platform.IOS, purpose=purpose, now=now)
        result = verify_assertion(
            assertion_bytes,
            public_key=device.public_key,
            app_id=device.app.app_id,
            client_data_hash=binding.client_data_hash(),
            previous_counter=device.counter,
        )
        if deferred is None:
            _advance_counter(device, result.counter, now)
    except AttestationError as exc:
        _event(EventType.ATTESTATION_ASSERT, exc.reason, client_id, request, key_id=device.key_id, detail=exc.detail)
        raise
    success = _event(EventType.ATTESTATION_ASSERT, "", client_id, request, key_id=device.key_id, counter=result.counter)
    if deferred is not None:
        deferred.append(_deferred_counter(device, result.counter, now, success, request))
    return device


_COUNTER_FIELDS = ["counter", "last_asserted_at", "id", "counter", "status", "requires_reattestation"]
_ADVANCE_COUNTER = Statement(
    Device,
    "UPDATE {table} SET counter = %s, last_asserted_at = %s"
    " WHERE id = %s AND counter < %s AND status = %s AND requires_reattestation = %s",
    _COUNTER_FIELDS,
)
_ADVANCE_COUNTER_STEP = Statement(Device, f"{_ADVANCE_COUNTER.template} RETURNING id", _COUNTER_FIELDS)


def _deferred_counter(
    device: Device, counter: int, now: datetime, success: SecurityEvent, request: HttpRequest | None
) -> DeferredWrite:
    """The counter's conditional UPDATE for the caller's statement (``RETURNING id``: a row when
    it changed one). ``run``, the write alone, refuses exactly as ``assert_apple_device`` does:
    the held success event withdrawn, the failure recorded, the ``AttestationError`` raised."""
    alone = write_alone(lambda: _advance_counter(device, counter, now), device, success, request)
    # As the write leaves it, for what reads the device before the statement (the policies).
    device.counter, device.last_asserted_at = counter, now
    return DeferredWrite(_ADVANCE_COUNTER_STEP, _counter_values(device, counter, now), alone)


def _counter_values(device: Device, counter: int, now: datetime) -> tuple[object, ...]:
    return (counter, now, device.pk, counter, DeviceStatus.ACTIVE, False)


def _advance_counter(device: Device, counter: int, now: datetime) -> None:
    """Store ``counter`` only if it is still greater than the stored one, the device is active
    and needs no re-attestation: one conditional ``UPDATE … WHERE counter < new AND status =
    'active' AND NOT requires_reattestation`` (atomic on its own, and what re-checks the
    device's state an operator may have changed since the request read it), so of two
    concurrent assertions with the same counter exactly one wins."""
    if _ADVANCE_COUNTER.run(*_counter_values(device, counter, now)) != 1:
        device.refresh_from_db(fields=["status", "status_reason", "counter", "requires_reattestation"])
        device.check_provable()
        raise AttestationError(Reason.COUNTER_NOT_INCREASING, f"counter {counter} <= {device.counter}")
    device.counter = counter
    device.last_asserted_at = now


def _event(event: EventType, reason: str, client_id: str, request: HttpRequest | None, **details: Any) -> SecurityEvent:
    return device_event(event, reason, client_id, request, platform=Platform.IOS.value, **details)
