"""Attestation storage: registered apps (per OAuth client) and the device registry.

Challenges are stateless (``attestation/flows/challenges.py``): they have no table.

Models hold single-row rules only; verification lives in ``attestation/apple/`` and
``attestation/android/``, use cases (enroll, assert, redeem) in ``attestation/flows/``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from core import crypto
from core.config_cache import ConfigQuerySet

from .errors import AttestationError, Reason


class Platform(models.TextChoices):
    IOS = "ios", "iOS (App Attest)"
    ANDROID = "android", "Android (Key Attestation / Play Integrity)"


class ChallengePurpose(models.TextChoices):
    ENROLL = "enroll", "Enrollment (first attestation of a device key)"
    REFRESH = "refresh", "Refresh (assertion with an enrolled key)"


class AppleEnvironment(models.TextChoices):
    DEVELOPMENT = "development", "development (aaguid appattestdevelop)"
    PRODUCTION = "production", "production (aaguid appattest)"


class IntegrityLevel(models.TextChoices):
    STRONG = "strong", "MEETS_STRONG_INTEGRITY"
    DEVICE = "device", "MEETS_DEVICE_INTEGRITY"
    BASIC = "basic", "MEETS_BASIC_INTEGRITY"


class DeviceCheckMode(models.TextChoices):
    """Whether an iOS app's enrollments carry an Apple DeviceCheck token (docs/attestation.md §4)."""

    OFF = "off", "Off"
    OPTIONAL = "optional", "Optional (queried when the app sends a token)"
    REQUIRED = "required", "Required (an enrollment without a token is refused)"


class DeviceCheckFailure(models.TextChoices):
    """What an enrollment does while Apple's DeviceCheck API fails."""

    FAIL_CLOSED = "fail_closed", "Fail closed (503 temporarily_unavailable, retry later)"
    FAIL_OPEN = "fail_open", "Fail open (enroll with the bits unknown)"


class RegisteredAppQuerySet(ConfigQuerySet["RegisteredApp"]):
    def for_client(self, client: Any, platform: str) -> RegisteredApp | None:
        return self.filter(client=client, platform=platform).select_related("client").first()


class RegisteredApp(models.Model):
    """The genuine app of an OAuth client on one platform, and the client's attestation policy."""

    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="registered_apps")
    platform = models.CharField(max_length=10, choices=Platform.choices)
    # iOS
    ios_team_id = models.CharField(max_length=10, blank=True, help_text="Apple Developer Team ID.")
    ios_bundle_id = models.CharField(max_length=155, blank=True)
    ios_environment = models.CharField(
        max_length=12, choices=AppleEnvironment.choices, default=AppleEnvironment.PRODUCTION, blank=True
    )
    devicecheck_mode = models.CharField(
        max_length=10, choices=DeviceCheckMode.choices, default=DeviceCheckMode.OFF, db_default=DeviceCheckMode.OFF,
        help_text="Apple DeviceCheck at enrollment: the per-device bits Apple keeps across reinstalls.",
    )
    devicecheck_on_failure = models.CharField(
        max_length=12, choices=DeviceCheckFailure.choices, default=DeviceCheckFailure.FAIL_CLOSED,
        db_default=DeviceCheckFailure.FAIL_CLOSED,
        help_text="When Apple's DeviceCheck API fails: refuse for now (503) or enroll with the bits unknown.",
    )
    # Android
    android_package_name = models.CharField(max_length=255, blank=True)
    android_signing_cert_digests = models.JSONField(
        default=list, blank=True, help_text="Base64 SHA-256 digests of the app signing certificates."
    )
    play_integrity_decryption_key_encrypted = models.TextField(blank=True, help_text="Encrypted at rest.")
    play_integrity_verification_key_encrypted = models.TextField(blank=True, help_text="Encrypted at rest.")
    # Policy
    require_attestation = models.BooleanField(default=True)
    min_integrity_level = models.CharField(
        max_length=10, choices=IntegrityLevel.choices, default=IntegrityLevel.DEVICE
    )
    allow_software_keys = models.BooleanField(default=False)
    play_integrity_max_age_minutes = models.PositiveIntegerField(
        default=0, help_text="Minutes a Play Integrity verdict is reused; 0 = required on every refresh."
    )
    allow_unattested_devices = models.BooleanField(
        default=False, db_default=False,
        help_text="Fallback (docs/unattested-devices.md): a device of this platform that cannot attest may enroll "
        "with its DPoP key only (attestation_type=none), with the health policy's 'unattested' outcome "
        "(reduced access by default). Off: refused as before.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = RegisteredAppQuerySet.as_manager()

    class Meta:
        db_table = "attestation_registered_app"
        constraints = [models.UniqueConstraint(fields=["client", "platform"], name="attestation_app_per_platform")]

    def __str__(self) -> str:
        ident = self.app_id if self.platform == Platform.IOS else self.android_package_name
        return f"{self.platform}:{ident}"

    @property
    def app_id(self) -> str:
        """Apple's App ID, ``TEAMID.bundle.id`` (App Attest's rpId)."""
        return f"{self.ios_team_id}.{self.ios_bundle_id}"

    def clean(self) -> None:
        if self.platform == Platform.IOS and not (self.ios_team_id and self.ios_bundle_id):
            raise ValidationError("An iOS app needs a team id and a bundle id.")
        if self.platform == Platform.ANDROID and not self.android_package_name:
            raise ValidationError("An Android app needs a package name.")

    def set_play_integrity_keys(self, decryption_key: bytes, verification_key: bytes) -> None:
        """Store both Play Integrity keys encrypted. Pass the raw key bytes (Play Console
        shows them base64 encoded: decode first); the getters return the same raw bytes."""
        self.play_integrity_decryption_key_encrypted = crypto.encrypt(decryption_key)
        self.play_integrity_verification_key_encrypted = crypto.encrypt(verification_key)

    def play_integrity_decryption_key(self) -> bytes | None:
        enc = self.play_integrity_decryption_key_encrypted
        return crypto.decrypt(enc) if enc else None

    def play_integrity_verification_key(self) -> bytes | None:
        enc = self.play_integrity_verification_key_encrypted
        return crypto.decrypt(enc) if enc else None


class DeviceStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    REVOKED = "revoked", "Revoked"


class SecurityLevel(models.TextChoices):
    SECURE_ENCLAVE = "secure_enclave", "Apple Secure Enclave"
    STRONGBOX = "strongbox", "Android StrongBox"
    TEE = "tee", "Android TEE"
    SOFTWARE = "software", "Software"
    NONE = "none", "None (unattested: DPoP key only)"


class DeviceQuerySet(models.QuerySet["Device"]):
    def active(self) -> DeviceQuerySet:
        return self.filter(status=DeviceStatus.ACTIVE)

    def attested(self) -> DeviceQuerySet:
        return self.filter(attested=True)

    def unattested(self) -> DeviceQuerySet:
        """Devices enrolled by the fallback with their DPoP key only (docs/unattested-devices.md)."""
        return self.filter(attested=False)


class Device(models.Model):
    """One attested app-instance key on one device (App Attest key / Android attested key)."""

    platform = models.CharField(max_length=10, choices=Platform.choices)
    # Found by (app, key_id) (the unique constraint), which serves look-ups by app alone.
    app = models.ForeignKey(RegisteredApp, on_delete=models.CASCADE, related_name="devices", db_index=False)
    key_id = models.CharField(
        max_length=128,
        help_text="App Attest key id (base64) / Android key fingerprint; "
        "unattested: the DPoP key's RFC 7638 thumbprint.",
    )
    public_key = models.TextField(help_text="PEM SubjectPublicKeyInfo.")
    counter = models.PositiveBigIntegerField(default=0)
    security_level = models.CharField(max_length=20, choices=SecurityLevel.choices)
    verdict = models.JSONField(default=dict, blank=True, help_text="Facts of the last attestation.")
    receipt = models.BinaryField(default=b"", blank=True, help_text="App Attest receipt (PKCS#7).")
    first_attested_at = models.DateTimeField(default=timezone.now)
    last_attested_at = models.DateTimeField(default=timezone.now)
    last_asserted_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=DeviceStatus.choices, default=DeviceStatus.ACTIVE, db_index=True
    )
    status_reason = models.CharField(max_length=200, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    attested = models.BooleanField(
        default=True, db_default=True, db_index=True,
        help_text="False: enrolled by the fallback for devices that cannot attest (DPoP key only, reduced access).",
    )
    requires_reattestation = models.BooleanField(default=False)
    reattestation_required_at = models.DateTimeField(
        null=True, blank=True, help_text="When re-attestation was demanded (its grace period runs from here)."
    )
    devicecheck_token_encrypted = models.TextField(
        blank=True, db_default="", help_text="The last Apple DeviceCheck token of this device (encrypted at rest)."
    )
    devicecheck_flag_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When an operator asked to flag this device at Apple (DeviceCheck bit)."
    )
    devicecheck_flagged_at = models.DateTimeField(
        null=True, blank=True, help_text="When Apple confirmed the DeviceCheck bit set."
    )

    objects = DeviceQuerySet.as_manager()

    class Meta:
        db_table = "attestation_device"
        constraints = [models.UniqueConstraint(fields=["app", "key_id"], name="attestation_device_key_per_app")]

    def __str__(self) -> str:
        return f"{self.platform} device {self.key_id[:12]}… ({self.status})"

    def check_usable(self) -> None:
        """Refuse a suspended or revoked device (``device_suspended`` / ``device_revoked``)."""
        if self.status == DeviceStatus.REVOKED:
            raise AttestationError(Reason.DEVICE_REVOKED, self.status_reason)
        if self.status == DeviceStatus.SUSPENDED:
            raise AttestationError(Reason.DEVICE_SUSPENDED, self.status_reason)

    def check_provable(self) -> None:
        """``check_usable`` and no re-attestation pending (``attestation_required``): what a
        refresh proof needs of the device."""
        self.check_usable()
        if self.requires_reattestation:
            raise AttestationError(Reason.ATTESTATION_REQUIRED, "re-attestation required")

    def devicecheck_token(self) -> str:
        """The stored DeviceCheck token, decrypted ("" when none)."""
        enc = self.devicecheck_token_encrypted
        return crypto.decrypt(enc).decode() if enc else ""

    def set_status(self, status: str, reason: str = "", now: datetime | None = None) -> None:
        self.status = status
        self.status_reason = reason[:200]
        self.status_changed_at = now or timezone.now()
        self.save(update_fields=["status", "status_reason", "status_changed_at"])


class AndroidRevocationList(models.Model):
    """One version of Google's Android attestation certificate revocation status list
    ("Certificate revocation status list", developer.android.com key attestation guide), as
    ``attestation.refresh_android_revocation_list`` downloaded it. Every web instance reads the
    newest row (through a per-process copy, ``attestation/android/revocation_store.py``), so a
    certificate Google revokes is refused on every host after the next refresh. A download
    identical to the newest row only moves its ``checked_at``; a new version is a new row (the
    few before it are kept for the record)."""

    entries = models.JSONField(help_text='{"<serial, lower-case hex>": "REVOKED" | "SUSPENDED"}')
    entry_count = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, help_text="SHA-256 (hex) of the canonical JSON of the entries.")
    source = models.CharField(max_length=500, help_text="Where the list came from (URL, or file path).")
    fetched_at = models.DateTimeField(help_text="When this version was first downloaded.")
    checked_at = models.DateTimeField(help_text="When a download last served this same version.")

    class Meta:
        verbose_name = "Android revocation status list"
        get_latest_by = "pk"

    def __str__(self) -> str:
        return f"{self.entry_count} entries from {self.source} ({self.fetched_at:%Y-%m-%d %H:%M} UTC)"
