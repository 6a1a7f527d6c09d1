"""Device registry use cases for Android: enroll with Key Attestation + Play Integrity,
then prove possession on every refresh.

* ``enroll_android_device``: the chain's attestationChallenge must be
  ``binding.client_data_hash()``, and a Play Integrity verdict must carry
  ``binding.request_hash()`` as ``nonce`` (classic) or ``requestHash`` (standard).
* ``verify_android_refresh``: an ECDSA/RSA signature by the attested key over
  ``binding.client_data()`` on every refresh, plus a fresh verdict unless the client's
  ``play_integrity_max_age_minutes`` lets the last one stand.

What the verifiers refuse of the device's *facts* (software key, boot state, bootloader lock,
device and app recognition, licensing) is the client's choice (``attestation/grading.py``):
a fact it denies is refused here as before graded trust, nothing stored; any other outcome
lets the evidence through and the device-health token policy grades it at issue.

Both redeem the binding's challenge before any cryptography (so it is burnt whatever the
outcome) and record one security event per decision (``attestation.enroll`` /
``attestation.assert``, ``platform=android``).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from typing import Any

from django.db import connections, router, transaction
from django.db.models import JSONField
from django.http import HttpRequest
from django.utils import timezone

from core.deferred_write import DeferredWrite
from core.events import EventType
from core.models import SecurityEvent
from core.sql import Statement

from ..android.chain import MAX_CHAIN_LENGTH
from ..android.digests import normalise_digest
from ..android.key_attestation import AndroidKeyAttestation, AndroidKeyPolicy, verify_key_attestation
from ..android.key_signature import load_public_key, verify_key_signature
from ..android.play_integrity import IntegrityPolicy, IntegrityVerdict, play_keys_from_raw, verify_classic_token
from ..android.play_integrity_api import PlayIntegrityClient, verify_standard_token
from ..app_settings import app_settings
from ..binding import RequestBinding
from ..encoding import b64decode_any
from ..errors import AttestationError, Reason
from ..grading import Refusals, refusals_for
from ..models import ChallengePurpose, Device, DeviceStatus, Platform, RegisteredApp, SecurityLevel
from .challenges import claim_challenge
from .registry import device_event, ready_for_proof, store_attested, write_alone

LEVELS = {
    "StrongBox": SecurityLevel.STRONGBOX,
    "TrustedEnvironment": SecurityLevel.TEE,
    "Software": SecurityLevel.SOFTWARE,
}
TOKEN_TYPES = ("standard", "classic")


def _require(ok: bool, reason: str, detail: str = "") -> None:
    if not ok:
        raise AttestationError(reason, detail)


def chain_from_wire(value: str) -> str:
    """The ``attestation`` parameter: a PEM chain, or comma-separated base64(url) DER
    certificates (leaf first, as ``KeyStore.getCertificateChain`` returns them)."""
    if "-----BEGIN CERTIFICATE-----" in value:
        return value
    parts = value.split(",")
    if len(parts) > MAX_CHAIN_LENGTH:
        raise AttestationError(Reason.MALFORMED_CERTIFICATE, f"chain longer than {MAX_CHAIN_LENGTH}")
    pems = []
    for part in (p.strip() for p in parts):
        der = b64decode_any(part)
        body = "\n".join(re.findall(".{1,64}", base64.b64encode(der).decode()))
        pems.append(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
    return "".join(pems)


def _digests(app: RegisteredApp) -> tuple[bytes, ...]:
    """Registered digests; none registered means nothing matches (fail closed)."""
    try:
        return tuple(normalise_digest(d) for d in app.android_signing_cert_digests or [])
    except (ValueError, TypeError) as exc:
        raise AttestationError(Reason.SIGNING_CERT_MISMATCH, "registered digest is not a SHA-256") from exc


def key_policy(app: RegisteredApp, refusals: Refusals | None = None) -> AndroidKeyPolicy:
    """Authenticity always; of the facts, what the client denies (``refusals_for``)."""
    refuse = refusals or refusals_for(app)
    return AndroidKeyPolicy.graded(
        package_name=app.android_package_name,
        signing_cert_digests=_digests(app),
        refuse_software=refuse.software_key,
        refuse_unverified_boot=refuse.unverified_boot,
        refuse_unlocked_bootloader=refuse.unlocked_bootloader,
    )


def integrity_policy(app: RegisteredApp, refusals: Refusals | None = None) -> IntegrityPolicy:
    """Authenticity always (package, request hash / nonce, freshness, digests, testing responses);
    of the facts, what the client denies (``refusals_for``)."""
    refuse = refusals or refusals_for(app)
    return IntegrityPolicy(
        package_name=app.android_package_name,
        signing_cert_digests=_digests(app),
        min_level=refuse.min_integrity,
        require_play_recognized=refuse.unrecognized_app,
        require_licensed=refuse.unlicensed,
        allow_testing=app_settings.PLAY_INTEGRITY_ALLOW_TESTING_RESPONSES,
        max_age=dt.timedelta(seconds=app_settings.PLAY_INTEGRITY_MAX_AGE),
    )


def check_integrity(
    app: RegisteredApp,
    token: str,
    token_type: str,
    binding: RequestBinding,
    now: dt.datetime,
    client: PlayIntegrityClient | None = None,
) -> IntegrityVerdict:
    """A classic token is decrypted with the app's Play keys; a standard one goes to Google.
    A kind this deployment does not decode while it decodes the other is the token's failure,
    counted as any other: an app with Play keys (classic tokens) and no service account would
    otherwise let a device that can no longer pass send ``standard``, get
    ``integrity_api_unavailable`` (a ``SERVICE_OUTAGE``, counted in no streak) and refresh for
    ever without its family being revoked. With neither, nothing can be decoded: the outage it
    is (a configuration to fix), whatever the device sends."""
    _require(token_type in TOKEN_TYPES, Reason.UNSUPPORTED_FORMAT, f"integrity_token_type {token_type!r}")
    policy, expected = integrity_policy(app), binding.request_hash()
    if token_type == "standard":
        if client is None and not app_settings.PLAY_INTEGRITY_CREDENTIALS.strip() and _decodes_classic(app):
            raise AttestationError(Reason.INTEGRITY_TOKEN_INVALID, "this app's tokens are classic: no service account")
        return verify_standard_token(token, policy=policy, expected_request_hash=expected, now=now, client=client)
    aes, spki = app.play_integrity_decryption_key(), app.play_integrity_verification_key()
    if not aes or not spki:
        raise AttestationError(Reason.INTEGRITY_TOKEN_INVALID, "no Play Integrity keys registered for classic tokens")
    return verify_classic_token(
        token, keys=play_keys_from_raw(aes, spki), policy=policy, expected_nonce=expected, now=now
    )


def _decodes_classic(app: RegisteredApp) -> bool:
    return bool(app.play_integrity_decryption_key() and app.play_integrity_verification_key())


def _integrity_facts(verdict: IntegrityVerdict, token_type: str, now: dt.datetime) -> dict[str, Any]:
    return {**verdict.facts, "token_type": token_type, "checked_at": now.isoformat()}


def enroll_android_device(
    app: RegisteredApp,
    chain_pem: str,
    integrity_token: str | None,
    binding: RequestBinding,
    now: dt.datetime | None = None,
    *,
    integrity_token_type: str = "standard",
    purpose: str = ChallengePurpose.ENROLL,
    request: HttpRequest | None = None,
    client: PlayIntegrityClient | None = None,
) -> Device:
    """Verify the Key Attestation chain and a Play Integrity verdict over ``binding``;
    register (or recognise) the device."""
    now = now or timezone.now()
    client_id = app.client.client_id
    try:
        _require(app.platform == Platform.ANDROID, Reason.DEVICE_MISMATCH, "app is not an Android app")
        _require(binding.client_id == client_id, Reason.DEVICE_MISMATCH, "binding is for another client")
        claim_challenge(binding.challenge, client_id=client_id, purpose=purpose, now=now)
        result = verify_key_attestation(
            chain_from_wire(chain_pem), challenge=binding.client_data_hash(), now=now, policy=key_policy(app)
        )
        _require(bool(integrity_token), Reason.INTEGRITY_TOKEN_REQUIRED, "a Play Integrity token is required to enroll")
        verdict = check_integrity(app, str(integrity_token), integrity_token_type, binding, now, client)
        device, created = _store_device(app, result, _integrity_facts(verdict, integrity_token_type, now), now)
    except AttestationError as exc:
        _event(EventType.ATTESTATION_ENROLL, exc.reason, client_id, request, detail=exc.detail)
        raise
    _event(
        EventType.ATTESTATION_ENROLL,
        "",
        client_id,
        request,
        key_id=device.key_id,
        device=device.pk,
        created=created,
        security_level=device.security_level,
    )
    return device


def _store_device(
    app: RegisteredApp, result: AndroidKeyAttestation, integrity: dict[str, Any], now: dt.datetime
) -> tuple[Device, bool]:
    fields = {
        "public_key": result.public_key_pem,
        "verdict": {"key_attestation": result.facts(), "play_integrity": integrity},
        "security_level": LEVELS[result.security_level],
    }
    return store_attested(app, platform=Platform.ANDROID, key_id=result.key_id, now=now, fields=fields)


def _last_verdict_fresh(device: Device, now: dt.datetime) -> bool:
    """Whether the stored verdict (dated by Google's ``timestampMillis``) is still young enough."""
    minutes = device.app.play_integrity_max_age_minutes
    issued = (device.verdict or {}).get("play_integrity", {}).get("timestamp")
    if not minutes or not issued:
        return False
    return now - dt.datetime.fromisoformat(issued) <= dt.timedelta(minutes=minutes)


def verify_android_refresh(
    device: Device,
    signature: str | bytes,
    integrity_token: str | None,
    binding: RequestBinding,
    now: dt.datetime | None = None,
    *,
    integrity_token_type: str = "standard",
    purpose: str = ChallengePurpose.REFRESH,
    request: HttpRequest | None = None,
    client: PlayIntegrityClient | None = None,
    deferred: list[DeferredWrite] | None = None,
) -> Device:
    """Check the attested key's signature over ``binding`` (always) and a Play Integrity
    verdict (required unless the last one is younger than the client's max age). Given
    ``deferred`` (PostgreSQL), the device's write is appended to it for the caller's own
    statement (``core.deferred_write``) instead of run here."""
    now = now or timezone.now()
    client_id = device.app.client.client_id
    try:
        ready_for_proof(device, binding, platform=Platform.ANDROID, purpose=purpose, now=now)
        verify_key_signature(load_public_key(device.public_key), signature, binding)
        integrity = None
        if integrity_token:
            verdict = check_integrity(device.app, integrity_token, integrity_token_type, binding, now, client)
            integrity = _integrity_facts(verdict, integrity_token_type, now)
        else:
            _require(
                _last_verdict_fresh(device, now),
                Reason.INTEGRITY_TOKEN_REQUIRED,
                "a fresh Play Integrity verdict is required",
            )
        if deferred is None:
            _record_refresh(device, integrity, now)
    except AttestationError as exc:
        _event(EventType.ATTESTATION_ASSERT, exc.reason, client_id, request, key_id=device.key_id, detail=exc.detail)
        raise
    success = _event(
        EventType.ATTESTATION_ASSERT, "", client_id, request, key_id=device.key_id,
        integrity_checked=integrity is not None,
    )
    if deferred is not None:
        deferred.append(_deferred_refresh(device, integrity, now, success, request))
    return device


_TOUCH_DEVICE_FIELDS = ["last_asserted_at", "id", "status", "requires_reattestation"]
_TOUCH_DEVICE = Statement(
    Device,
    "UPDATE {table} SET last_asserted_at = %s WHERE id = %s AND status = %s AND requires_reattestation = %s",
    _TOUCH_DEVICE_FIELDS,
)


# PostgreSQL merges the new verdict into the stored one inside the conditional UPDATE itself
# (``jsonb ||``), so no row lock and no read are needed: one statement, like the touch above.
_MERGE_VERDICT_FIELDS = ["last_asserted_at", "verdict", "id", "status", "requires_reattestation"]
_MERGE_VERDICT = Statement(
    Device,
    "UPDATE {table} SET last_asserted_at = %s,"
    " verdict = COALESCE(verdict, '{{}}'::jsonb) || jsonb_build_object('play_integrity', %s::jsonb)"
    " WHERE id = %s AND status = %s AND requires_reattestation = %s RETURNING verdict",
    _MERGE_VERDICT_FIELDS,
)


_TOUCH_DEVICE_STEP = Statement(Device, f"{_TOUCH_DEVICE.template} RETURNING id", _TOUCH_DEVICE_FIELDS)
_MERGE_VERDICT_STEP = Statement(
    Device, _MERGE_VERDICT.template.replace("RETURNING verdict", "RETURNING id"), _MERGE_VERDICT_FIELDS
)


def _deferred_refresh(
    device: Device, integrity: dict[str, Any] | None, now: dt.datetime, success: SecurityEvent,
    request: HttpRequest | None,
) -> DeferredWrite:
    """The device's conditional UPDATE (touch, or merge of the new verdict) for the caller's
    statement, ``RETURNING id``: a row when it changed one. ``run``, the write alone, refuses
    exactly as ``verify_android_refresh`` does: the held success event withdrawn, the failure
    recorded, the ``AttestationError`` raised. The device in memory gets the merged verdict
    now: the policies that grade it run before the statement."""
    alone = write_alone(lambda: _record_refresh(device, integrity, now), device, success, request)
    device.last_asserted_at = now
    if integrity is None:
        return DeferredWrite(_TOUCH_DEVICE_STEP, (now, device.pk, DeviceStatus.ACTIVE, False), alone)
    device.verdict = {**(device.verdict or {}), "play_integrity": integrity}  # what ``||`` stores
    return DeferredWrite(_MERGE_VERDICT_STEP, (now, integrity, device.pk, DeviceStatus.ACTIVE, False), alone)


def _record_refresh(device: Device, integrity: dict[str, Any] | None, now: dt.datetime) -> None:
    """Store the refresh only while the device is still active and needs no re-attestation (the
    request read the device a moment ago; this write re-checks what an operator may have changed
    since). Without a new verdict that is one conditional UPDATE; a new verdict is merged into
    the stored one in that UPDATE on PostgreSQL, elsewhere under a row lock."""
    if integrity is None:
        if _TOUCH_DEVICE.run(now, device.pk, DeviceStatus.ACTIVE, False) != 1:
            _refuse_current_state(device)
        device.last_asserted_at = now
        return
    if connections[router.db_for_write(Device)].vendor == "postgresql":
        merged = _MERGE_VERDICT.first_row(now, integrity, device.pk, DeviceStatus.ACTIVE, False)
        if merged is None:
            _refuse_current_state(device)
            return
        device.last_asserted_at, device.verdict = now, _verdict_from_db(merged[0])
        return
    with transaction.atomic():
        locked = Device.objects.select_for_update().get(pk=device.pk)
        locked.check_provable()
        locked.last_asserted_at = now
        locked.verdict = {**(locked.verdict or {}), "play_integrity": integrity}
        locked.save(update_fields=["last_asserted_at", "verdict"])
    device.last_asserted_at, device.verdict = locked.last_asserted_at, locked.verdict


def _verdict_from_db(value: Any) -> Any:
    """The stored verdict as the ORM would read it (psycopg hands Django's JSON columns over as text)."""
    field = Device._meta.get_field("verdict")
    assert isinstance(field, JSONField)
    connection = connections[router.db_for_write(Device)]
    return field.from_db_value(value, None, connection)  # type: ignore[arg-type]  # no expression: a plain column


def _refuse_current_state(device: Device) -> None:
    """The conditional write matched nothing: say why, from the device as it is now."""
    device.refresh_from_db(fields=["status", "status_reason", "requires_reattestation"])
    device.check_provable()
    raise AttestationError(Reason.ATTESTATION_REQUIRED, "the device changed during this request: attest again")


def _event(event: EventType, reason: str, client_id: str, request: HttpRequest | None, **details: Any) -> SecurityEvent:
    return device_event(event, reason, client_id, request, platform=Platform.ANDROID.value, **details)
