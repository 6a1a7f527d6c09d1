"""Binding token families to attested devices (docs/attestation.md §3).

At the authorization-code exchange of a client that requires attestation, the request
carries an enrollment attestation over the canonical binding (challenge, client_id, the
code's hash, the DPoP key); the device is registered and the new session bound to it.
Every refresh of such a session carries fresh evidence over a binding that names that
exact refresh token: an App Attest assertion, or an Android key signature plus a Play
Integrity verdict (as often as the app's policy asks).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cbor2
from django.core.cache import cache
from django.http import HttpRequest

from attestation.android.digests import normalise_digest
from attestation.binding import RequestBinding, devicecheck_hash, grant_hash
from attestation.encoding import b64decode_any
from attestation.errors import AttestationError, Reason
from attestation.flows.android_devices import enroll_android_device, verify_android_refresh
from attestation.flows.devices import assert_apple_device, enroll_apple_device
from attestation.flows.unattested import UNATTESTED_TYPE, allows_unattested, enroll_unattested_device, parse_claim
from attestation.models import Device, DeviceStatus, Platform, RegisteredApp
from core import config_cache, rates
from core.cache import ReadAhead
from core.counters import incr_in_window
from core.deferred_write import DeferredWrite

from ..app_settings import app_settings
from ..models import DeviceSession

TYPES = {"apple-appattest": Platform.IOS, "android-key": Platform.ANDROID}
#: What a client without the fallback answers to ``attestation_type=none``: exactly what it
#: answered before the fallback existed.
UNSUPPORTED_TYPE = "attestation_type must be apple-appattest or android-key"


@dataclass(frozen=True)
class Evidence:
    """The attestation form parameters of one token request."""

    kind: str
    challenge: str
    attestation: str = ""
    signature: str = ""
    integrity_token: str = ""
    integrity_token_type: str = "standard"
    key_id: str = ""
    signals: dict[str, Any] = field(default_factory=dict)
    devicecheck_token: str = ""  # iOS enrollment: DCDevice.generateToken, base64
    # attestation_type=none (docs/unattested-devices.md): as sent, judged once the client allows it
    platform: str = ""
    unavailable_reason: str = ""

    @property
    def unattested(self) -> bool:
        return self.kind == UNATTESTED_TYPE


def evidence_from_form(form: Any) -> Evidence | None:
    """Parse the evidence, or None when the request carries none. Raises ``AttestationError``
    for evidence that is present but unusable."""
    kind = form.get("attestation_type") or ""
    if not kind and not form.get("attestation_challenge"):
        return None
    if kind == UNATTESTED_TYPE:
        return Evidence(kind=kind, challenge=form.get("attestation_challenge") or "",
                        platform=form.get("attestation_platform") or "",
                        unavailable_reason=form.get("attestation_unavailable_reason") or "",
                        devicecheck_token=form.get("devicecheck_token") or "")
    if kind not in TYPES:
        raise AttestationError(Reason.UNSUPPORTED_FORMAT, UNSUPPORTED_TYPE)
    signals: Any = {}
    if form.get("attestation_signals"):
        try:
            signals = json.loads(form["attestation_signals"])
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
            raise AttestationError(Reason.MALFORMED_TOKEN, "attestation_signals is not JSON") from exc
        if not isinstance(signals, dict):
            raise AttestationError(Reason.MALFORMED_TOKEN, "attestation_signals must be a JSON object")
    integrity_type = form.get("integrity_token_type") or "standard"
    if integrity_type not in {"standard", "classic"}:
        raise AttestationError(Reason.MALFORMED_TOKEN, "integrity_token_type must be standard or classic")
    return Evidence(
        kind=kind,
        challenge=form.get("attestation_challenge") or "",
        attestation=form.get("attestation") or "",
        signature=form.get("client_data_signature") or "",
        integrity_token=form.get("integrity_token") or "",
        integrity_token_type=integrity_type,
        key_id=key_id_hex(form.get("attestation_key_id") or ""),
        signals=signals,
        devicecheck_token=form.get("devicecheck_token") or "",
    )


def key_id_hex(value: str) -> str:
    """An ``attestation_key_id`` (the 32-byte key id: App Attest's ``keyId``, or for Android the
    SHA-256 of the key's SubjectPublicKeyInfo) in any of its spellings — base64, base64url or
    hex — as lower-case hex; empty when absent. Anything else is refused as malformed (not as
    another device, which would revoke the family)."""
    if not value:
        return ""
    try:
        return normalise_digest(value).hex()
    except ValueError as exc:
        raise AttestationError(
            Reason.MALFORMED_KEY_ID, "attestation_key_id must be the 32-byte key id as base64, base64url or hex"
        ) from exc


def _stored_key_id_hex(device: Device) -> str:
    try:
        return normalise_digest(device.key_id).hex()
    except ValueError:
        return device.key_id


def client_requires_attestation(client: Any) -> bool:
    return config_cache.cached(
        ("requires-attestation", client.pk),
        lambda: RegisteredApp.objects.filter(client=client, require_attestation=True).exists(),
    )


def _binding(evidence: Evidence, client_id: str, grant: str, secret: str, dpop_jkt: str | None) -> RequestBinding:
    return RequestBinding(
        challenge=evidence.challenge,
        client_id=client_id,
        grant=grant,
        grant_hash=grant_hash(secret),
        dpop_jkt=dpop_jkt or "",
        signals=evidence.signals,
        devicecheck=devicecheck_hash(evidence.devicecheck_token),
    )


def enroll(
    client: Any, evidence: Evidence, *, code: str, dpop_jkt: str | None, now: datetime, request: HttpRequest | None,
    grant: str = "authorization_code", dpop_jwk: dict[str, Any] | None = None,
) -> Device:
    """Verify an enrollment attestation bound to this code exchange (or, ``grant`` =
    ``refresh_token``, to the refresh that upgrades an unattested session: ``code`` is then
    the refresh token); returns the device. ``attestation_type=none`` enrolls an unattested
    device where the client's app for that platform allows it, and is refused exactly as
    before the fallback existed everywhere else."""
    if evidence.unattested:
        return _enroll_unattested(client, evidence, dpop_jkt=dpop_jkt, dpop_jwk=dpop_jwk, now=now, request=request)
    app = RegisteredApp.objects.for_client(client, TYPES[evidence.kind])
    if app is None:
        raise AttestationError(Reason.DEVICE_MISMATCH, f"no {TYPES[evidence.kind]} app is registered for this client")
    binding = _binding(evidence, client.client_id, grant, code, dpop_jkt)
    if evidence.kind == "apple-appattest":
        return enroll_apple_device(app, _b64_bytes(evidence.attestation), binding, now=now, request=request,
                                   devicecheck_token=evidence.devicecheck_token)
    return enroll_android_device(
        app, evidence.attestation, evidence.integrity_token or None, binding, now,
        integrity_token_type=evidence.integrity_token_type, request=request,
    )


def _enroll_unattested(
    client: Any, evidence: Evidence, *, dpop_jkt: str | None, dpop_jwk: dict[str, Any] | None, now: datetime,
    request: HttpRequest | None,
) -> Device:
    app = None
    if evidence.platform in Platform.values:
        app = RegisteredApp.objects.for_client(client, evidence.platform)
    if not allows_unattested(app):  # no fallback here: the answer of a server without one
        raise AttestationError(Reason.UNSUPPORTED_FORMAT, UNSUPPORTED_TYPE)
    assert app is not None
    claim = parse_claim(evidence.platform, evidence.unavailable_reason)
    return enroll_unattested_device(app, claim, challenge=evidence.challenge, dpop_jkt=dpop_jkt or "",
                                    dpop_jwk=dpop_jwk, now=now, request=request,
                                    devicecheck_token=evidence.devicecheck_token)


def is_enrollment(evidence: Evidence) -> bool:
    """Whether ``evidence`` is a first attestation of a key (what upgrades an unattested
    session) rather than a proof by an enrolled key: Android sends the key's chain, iOS an
    attestation object (CBOR with ``attStmt``) rather than an assertion. Unreadable bytes
    count as an enrollment, so that they fail as malformed."""
    if evidence.kind == "android-key":
        return bool(evidence.attestation)
    try:
        decoded = cbor2.loads(_b64_bytes(evidence.attestation))
    except (AttestationError, cbor2.CBORError, ValueError, TypeError, RecursionError):
        return True
    return not isinstance(decoded, dict) or "authenticatorData" not in decoded


def verify_refresh(
    session: DeviceSession,
    evidence: Evidence,
    *,
    refresh_token: str,
    dpop_jkt: str | None,
    now: datetime,
    request: HttpRequest | None,
    deferred: list[DeferredWrite] | None = None,
) -> Device:
    """Verify fresh evidence from the session's own device over this exact refresh request.
    Given ``deferred``, the device's write is appended to it for the rotation statement to
    carry (``rotation_statement.carries_device_write``) instead of run here."""
    device = session.device
    assert device is not None
    if evidence.unattested:  # an attested session never goes back to a DPoP key alone
        raise AttestationError(Reason.UNATTESTED_NOT_ALLOWED, "this session is bound to an attested device")
    if TYPES[evidence.kind] != device.platform or (evidence.key_id and evidence.key_id != _stored_key_id_hex(device)):
        raise AttestationError(Reason.DEVICE_MISMATCH, "the evidence is not from this session's device")
    if device.status == DeviceStatus.REVOKED:
        raise AttestationError(Reason.DEVICE_REVOKED)
    binding = _binding(evidence, session.client.client_id, "refresh_token", refresh_token, dpop_jkt)
    if evidence.kind == "apple-appattest":
        return assert_apple_device(device, _b64_bytes(evidence.attestation), binding, now=now, request=request,
                                   deferred=deferred)
    return verify_android_refresh(
        device, evidence.signature, evidence.integrity_token or None, binding, now,
        integrity_token_type=evidence.integrity_token_type, request=request, deferred=deferred,
    )


def _b64_bytes(value: str) -> bytes:
    return b64decode_any(value)


def unattested_refresh_throttled(session: DeviceSession, now: datetime) -> int | None:
    """Count a refresh of an unattested device's session in its sliding window (``core.rates``);
    the seconds to wait when over ``SESSIONS_UNATTESTED_REFRESH_LIMIT``, else None."""
    rate = rates.Rate(app_settings.UNATTESTED_REFRESH_LIMIT, app_settings.UNATTESTED_REFRESH_WINDOW)
    key = f"vigil:unattested-refreshes:{session.sid}"
    wait = rates.exceeded(key, rate, now)
    if wait is None:  # spent, unless the refresh fails in an outage (its retry then counts once)
        rates.kept_unless_outage(key, rate, now)
    return wait


def register_failure(session: DeviceSession) -> int:
    """Count a failed attestation on this session (shared cache, one hour); returns the streak."""
    return incr_in_window(failures_key(session), 3600)


def failure_limit_reached(streak: int) -> bool:
    return streak >= app_settings.ATTESTATION_MAX_FAILURES


def failures_key(session: DeviceSession) -> str:
    return f"vigil:attestation-failures:{session.sid}"


def current_failures(session: DeviceSession) -> int:
    """The session's failure streak, left as it is (an unattested refresh proves no attestation,
    so it does not end a streak of failed upgrades): one cache read."""
    return int(cache.get(failures_key(session)) or 0)


def take_failures(
    session: DeviceSession, read: ReadAhead | None = None, *, settle: Callable[[], None] | None = None
) -> int:
    """End the session's failure streak after a good proof; returns how long it was (0 on
    the common path, which then costs no write, and no round trip of its own when ``read``
    read it with the proof's challenge claim: ``core.cache.reading_ahead``). ``settle``: the
    proof's deferred write, run first when there is a streak to end (its refusal leaves the
    streak to grow, as a refusal before this point does)."""
    key = failures_key(session)
    streak = int((read.get(cache, key) if read is not None else cache.get(key)) or 0)
    if streak:
        if settle is not None:
            settle()
        cache.delete(key)
    return streak
