"""Accounts storage: the user, their passkeys and an index of their browser sessions."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth import models as auth_models
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.deactivation import DeactivatingQuerySet
from core.encoding import b64url_encode
from sessions.flows import revocation


class UserQuerySet(DeactivatingQuerySet["User"]):
    def deactivated(self, rows: list[User]) -> None:
        """A bulk deactivation (a script, a directory sync) revokes the users' families as a
        save does (``sessions.flows.cascade``): recorded and announced to relying services.
        One query finds the live families of all ``rows`` (a chunk), not one per user."""
        revocation.revoke_sessions(revocation.live_sessions(user__in=rows), revocation.Reason.USER_DEACTIVATED)


class UserManager(auth_models.UserManager.from_queryset(UserQuerySet)):  # type: ignore[misc]
    pass


class User(AbstractUser):
    """A person who signs in. ``subject`` is the stable, non-reassignable OIDC ``sub``."""

    objects: ClassVar[UserManager] = UserManager()

    subject = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    email_verified = models.BooleanField(default=False)
    require_mfa = models.BooleanField(
        default=False, help_text="Require a second factor for this user whatever the client policy."
    )
    webauthn_user_handle = models.CharField(
        max_length=100,
        unique=True,
        null=True,
        blank=True,
        editable=False,
        help_text="Random WebAuthn user handle (base64url), shared by all this user's passkeys.",
    )

    class Meta:
        db_table = "accounts_user"

    def get_user_id(self) -> str:
        """Authlib's hook: the ``sub`` claim."""
        return str(self.subject)

    def ensure_webauthn_user_handle(self) -> str:
        """The user handle (WebAuthn L3 §5.4.3): 32 random bytes, no personal data (§14.6.1)."""
        if not self.webauthn_user_handle:
            self.webauthn_user_handle = b64url_encode(secrets.token_bytes(32))
            self.save(update_fields=["webauthn_user_handle"])
        return self.webauthn_user_handle


class Passkey(models.Model):
    """A WebAuthn credential record (WebAuthn L3 §4 "credential record")."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="passkeys")
    name = models.CharField(max_length=100)
    credential_id = models.CharField(max_length=1400, unique=True, help_text="base64url credential id")
    public_key = models.BinaryField(help_text="COSE_Key of the credential")
    sign_count = models.PositiveBigIntegerField(default=0)
    transports = models.JSONField(default=list, blank=True)
    backup_eligible = models.BooleanField(default=False, help_text="BE flag: a synced (multi-device) passkey")
    backup_state = models.BooleanField(default=False, help_text="BS flag at the last use")
    user_handle = models.CharField(max_length=100)
    aaguid = models.CharField(max_length=36, blank=True)
    attestation_format = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "accounts_passkey"
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"

    @property
    def amr_key(self) -> str:
        """RFC 8176: ``swk`` for a synced (backup-eligible) passkey, whose private key leaves the
        device; ``hwk`` for a device-bound one. Vigil's documented choice."""
        return "swk" if self.backup_eligible else "hwk"


class BrowserSessionQuerySet(models.QuerySet["BrowserSession"]):
    def open(self) -> BrowserSessionQuerySet:
        return self.filter(ended_at__isnull=True)


class BrowserSession(models.Model):
    """Index of a user's Django sessions so they can be listed and signed out.

    The session key is a bearer secret: only its SHA-256 (for lookup) and an encrypted copy
    (to delete the session from the store) are kept.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="browser_sessions")
    sid = models.CharField(max_length=64, db_index=True, help_text="OP session id (authstate sid)")
    key_hash = models.CharField(max_length=64, unique=True)
    key_encrypted = models.TextField()
    amr = models.JSONField(default=list)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_auth_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = BrowserSessionQuerySet.as_manager()

    class Meta:
        db_table = "accounts_browser_session"
        ordering = ["-last_auth_at"]

    def end(self, now: datetime | None = None) -> None:
        self.ended_at = now or timezone.now()
        self.save(update_fields=["ended_at"])


class SealedTOTPDevice(TOTPDevice):
    """django-otp's TOTP device whose secret is encrypted at rest (``accounts.totp_secret``).

    Same table; every accounts flow uses this proxy so ``bin_key`` (used by
    ``verify_token`` and the provisioning URI) is the decrypted secret.
    """

    class Meta:
        proxy = True
        verbose_name = "TOTP device"

    @property
    def bin_key(self) -> bytes:
        from .totp_secret import open_

        return open_(self.key)

    @classmethod
    def create_sealed(cls, user: Any, name: str) -> SealedTOTPDevice:
        from .totp_secret import SECRET_BYTES, seal

        return cls.objects.create(user=user, name=name, confirmed=False, key=seal(secrets.token_bytes(SECRET_BYTES)))
