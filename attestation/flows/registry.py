"""Operator decisions on registered devices (admin actions): suspend, revoke, require
re-attestation. Each records one security event; suspending and revoking also announce
themselves (``attestation.signals``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from attestation.signals import device_revoked, device_suspended
from core.events import EventType, Outcome, record, withdraw
from core.models import SecurityEvent

from ..binding import RequestBinding
from ..errors import AttestationError, Reason
from ..models import Device, DeviceStatus, RegisteredApp
from ..tasks import devicecheck_flag_device
from .challenges import claim_challenge


def _record(event: EventType, device: Device, actor: Any, reason: str, **details: Any) -> None:
    record(
        event,
        outcome=Outcome.SUCCESS,
        reason=reason[:80],
        user=actor,
        client_id=device.app.client.client_id,
        device=device.pk,
        key_id=device.key_id,
        platform=device.platform,
        **details,
    )


def suspend_device(device: Device, *, reason: str = "", actor: Any = None, now: datetime | None = None) -> None:
    """Refuse the device until an operator reactivates it (``device_suspended``), and announce it."""
    moment = now or timezone.now()
    device.set_status(DeviceStatus.SUSPENDED, reason, moment)
    _record(EventType.ATTESTATION_DEVICE_SUSPENDED, device, actor, reason)
    device_suspended.send(sender=Device, device=device, reason=reason, actor=actor, now=moment)


def revoke_device(device: Device, *, reason: str = "", actor: Any = None, now: datetime | None = None) -> None:
    """Refuse the device for good (``device_revoked``); the app must enroll a new key. Its
    token families end at once (issue 5 §5), not at their next refresh: the announcement's
    listener (``sessions.flows.cascade``) ends them."""
    moment = now or timezone.now()
    device.set_status(DeviceStatus.REVOKED, reason, moment)
    _record(EventType.ATTESTATION_DEVICE_REVOKED, device, actor, reason)
    device_revoked.send(sender=Device, device=device, reason=reason, actor=actor, now=moment)


def delete_devices(devices: list[Device], *, actor: Any = None) -> None:
    """Delete devices with no token family (families protect their device), each on record
    (``attestation.device.deleted``) in the deletion's transaction: the row held the key's
    status (a suspension or revocation included), counter and DeviceCheck flag, and deleting
    it forgets them, an operator's decision like any other on the registry."""
    with transaction.atomic():
        Device.objects.filter(pk__in=[device.pk for device in devices]).delete()
        for device in devices:
            _record(EventType.ATTESTATION_DEVICE_DELETED, device, actor, "admin: deleted", status=device.status,
                    attested=device.attested)


def revoke_and_flag_device(
    device: Device, *, reason: str = "", actor: Any = None, now: datetime | None = None
) -> bool:
    """Revoke for abuse, then set the abuse bit (``ATTESTATION_DEVICECHECK_ABUSE_BIT``) at Apple
    for the physical device, so its next enrollment — even from a reinstalled app with a new
    App Attest key — meets the ``devicecheck_flagged`` health rule. Apple is called by a Celery
    task with retries (``attestation.devicecheck_flag_device``) once this commits. Returns
    whether a flag was queued (False: the device never sent a DeviceCheck token)."""
    moment = now or timezone.now()
    revoke_device(device, reason=reason, actor=actor, now=moment)
    if not device.devicecheck_token_encrypted:
        record(EventType.ATTESTATION_DEVICECHECK, outcome=Outcome.FAILURE, reason="devicecheck_token_missing",
               user=actor, client_id=device.app.client.client_id, device=device.pk, platform=device.platform,
               operation="update")
        return False
    Device.objects.filter(pk=device.pk).update(devicecheck_flag_requested_at=moment, devicecheck_flagged_at=None)
    device.devicecheck_flag_requested_at, device.devicecheck_flagged_at = moment, None
    transaction.on_commit(lambda: devicecheck_flag_device.delay(device.pk))
    return True


def reactivate_device(device: Device, *, reason: str = "", actor: Any = None, now: datetime | None = None) -> None:
    """Lift a suspension (a revoked device stays revoked)."""
    if device.status != DeviceStatus.SUSPENDED:
        return
    device.set_status(DeviceStatus.ACTIVE, reason, now or timezone.now())
    _record(EventType.ATTESTATION_DEVICE_REACTIVATED, device, actor, reason)


def require_reattestation(
    device: Device, *, reason: str = "", actor: Any = None, now: datetime | None = None
) -> None:
    """The next assertion is refused (``attestation_required``) until the app attests again."""
    moment = now or timezone.now()
    updated = Device.objects.filter(pk=device.pk, requires_reattestation=False).update(
        requires_reattestation=True, reattestation_required_at=moment
    )
    device.requires_reattestation = True
    if updated:
        device.reattestation_required_at = moment
    _record(EventType.ATTESTATION_DEVICE_REATTESTATION_REQUIRED, device, actor, reason)


def device_event(
    event: EventType, reason: str, client_id: str, request: Any, *, platform: str, **details: Any
) -> SecurityEvent:
    """One security event per enrollment or proof, success or failure (``reason`` set)."""
    return record(event, outcome=Outcome.FAILURE if reason else Outcome.SUCCESS, reason=reason, client_id=client_id,
           request=request, platform=platform, **details)


def write_alone(write: Callable[[], None], device: Device, success: SecurityEvent, request: Any) -> Callable[[], None]:
    """A proof's deferred device write run on its own (``core.deferred_write``): refused, it
    withdraws the success event the proof held and records the refusal, as the proof would have."""

    def alone() -> None:
        try:
            write()
        except AttestationError as exc:
            withdraw(success)
            device_event(EventType.ATTESTATION_ASSERT, exc.reason, device.app.client.client_id, request,
                         platform=device.platform, key_id=device.key_id, detail=exc.detail)
            raise

    return alone


def store_attested(
    app: RegisteredApp, *, platform: str, key_id: str, now: datetime, fields: dict[str, Any], **create_only: Any
) -> tuple[Device, bool]:
    """Register a freshly attested key, or refresh the attestation of a known one that is still
    usable (a suspended or revoked device stays refused). ``fields`` are set either way."""
    fields = {**fields, "last_attested_at": now, "requires_reattestation": False, "reattestation_required_at": None}
    try:
        with transaction.atomic():
            device = Device.objects.create(
                platform=platform, app=app, key_id=key_id, first_attested_at=now, **create_only, **fields
            )
            return device, True
    except IntegrityError:
        pass
    with transaction.atomic():
        device = Device.objects.select_for_update().get(app=app, key_id=key_id)
        device.check_usable()
        for name, value in fields.items():
            setattr(device, name, value)
        device.save(update_fields=list(fields))
    return device, False


def ready_for_proof(
    device: Device,
    binding: RequestBinding,
    *,
    platform: str,
    purpose: str,
    now: datetime,
) -> None:
    """What every refresh proof starts with, on both platforms: check it is this client's
    usable device of this platform (as the request read it; each platform's final write
    re-checks status and re-attestation atomically), then claim the request's challenge."""
    device.check_usable()
    client_id = device.app.client.client_id
    if device.platform != platform:
        raise AttestationError(Reason.DEVICE_MISMATCH, f"not a {platform} device")
    if binding.client_id != client_id:
        raise AttestationError(Reason.DEVICE_MISMATCH, "device belongs to another client")
    if device.requires_reattestation:
        raise AttestationError(Reason.ATTESTATION_REQUIRED, "re-attestation required")
    claim_challenge(binding.challenge, client_id=client_id, purpose=purpose, now=now)
