"""Sessions as token families: one ``DeviceSession`` per successful authorization,
its rotating refresh tokens, and a record of every access token issued (by ``jti``).

A refresh token is stored only as its SHA-256 hash. Rotation marks the presented token
``rotated_at`` and issues its successor in the same session; presenting a rotated token
again is reuse and revokes the whole session (the family).
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class SessionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    STEP_UP_REQUIRED = "step_up", "Step-up required"
    REVOKED = "revoked", "Revoked"


class DeviceSessionQuerySet(models.QuerySet["DeviceSession"]):
    def active(self) -> DeviceSessionQuerySet:
        return self.filter(status=SessionStatus.ACTIVE)


class DeviceSession(models.Model):
    """A signed-in app on one device: the family every refresh token of one login belongs to."""

    sid = models.CharField(max_length=64, unique=True, help_text="Public id of this token family.")
    # Found by (user, status) (Meta.indexes), which serves look-ups by user alone: no index of its own.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="device_sessions", db_index=False
    )
    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="device_sessions")
    authorization_code = models.OneToOneField(
        "device_sessions.AuthorizationCode",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="device_session",
    )
    browser_sid = models.CharField(max_length=64, blank=True, db_index=True, help_text="OP login session (sid).")
    login_id = models.CharField(
        max_length=32, blank=True, default="", db_default="",
        help_text="The sign-in that started this family (its login id): it answers a step-up demand only if it "
                  "completed after the demand opened (risk.stepup).",
    )
    scope = models.TextField(blank=True)
    resource = models.JSONField(default=list, blank=True)
    auth_time = models.DateTimeField()
    amr = models.JSONField(default=list)
    acr = models.CharField(max_length=100, blank=True)
    nonce = models.CharField(max_length=512, blank=True)
    device = models.ForeignKey(
        "attestation.Device",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sessions",
        help_text="The attested device this family is bound to; every refresh must prove it again.",
    )
    dpop_jkt = models.CharField(
        max_length=64, blank=True, help_text="RFC 7638 thumbprint of the DPoP key the refresh tokens are bound to."
    )
    status = models.CharField(max_length=10, choices=SessionStatus.choices, default=SessionStatus.ACTIVE, db_index=True)
    status_reason = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_refresh_at = models.DateTimeField(null=True, blank=True)
    last_ip = models.GenericIPAddressField(null=True, blank=True)
    last_place = models.CharField(
        max_length=120, blank=True, help_text="City and country of the last IP (offline GeoIP)."
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = DeviceSessionQuerySet.as_manager()

    class Meta:
        db_table = "sessions_device_session"
        indexes = [models.Index(fields=["user", "status"])]

    def __str__(self) -> str:
        return f"{self.user} @ {self.client.client_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status == SessionStatus.ACTIVE


class RefreshToken(models.Model):
    """One refresh token of a family; Authlib's ``TokenMixin`` for the refresh grant."""

    token_hash = models.BinaryField(max_length=32, unique=True)  # core.crypto.token_digest of the value
    session = models.ForeignKey(DeviceSession, on_delete=models.CASCADE, related_name="refresh_tokens")
    scope = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "sessions_refresh_token"

    # --- Authlib TokenMixin ---------------------------------------------------------------
    def check_client(self, client: object) -> bool:
        return self.session.client_id == getattr(client, "pk", None)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.expires_at - self.created_at).total_seconds()))

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.expires_at

    def is_revoked(self) -> bool:
        """Revoked, its family ended, or its user or client deactivated (also behind the
        revocation signals, by ``QuerySet.update``: both are judged where the token is used)."""
        session = self.session
        return (self.revoked_at is not None or not session.is_active or not session.user.is_active
                or not session.client.is_active)

    def get_user(self) -> object:
        return self.session.user

    def get_client(self) -> object:
        return self.session.client


class AccessToken(models.Model):
    """Every access token issued, by ``jti``, so it can be revoked and introspected."""

    jti = models.CharField(max_length=64, unique=True)
    session = models.ForeignKey(
        DeviceSession, null=True, blank=True, on_delete=models.CASCADE, related_name="access_tokens"
    )
    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    scope = models.TextField(blank=True)
    audience = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "sessions_access_token"

    def is_active(self, now: datetime | None = None) -> bool:
        return not self.is_revoked() and not self.is_expired(now)

    def is_revoked(self) -> bool:
        """Revoked, its family ended, or its user (a client's own token has none) or its client
        deactivated: a user or client deactivated behind the revocation signals holds nothing live."""
        if self.revoked_at is not None or (self.session is not None and not self.session.is_active):
            return True
        return (self.user is not None and not self.user.is_active) or not self.clients_active()

    def clients_active(self) -> bool:
        """Its client and its family's (an exchanged token lives in its subject token's family,
        RFC 8693) both still active: deactivating either ends the token through the signal
        (``sessions.flows.cascade``), and a ``QuerySet.update`` that skips it must not keep it
        live. Read from the rows loaded with the token (``select_related``: no query of its own)."""
        return self.client.is_active and (self.session is None or self.session.client.is_active)

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.expires_at


class AuthorizationCode(models.Model):
    """A single-use authorization code, stored only as its SHA-256 hash."""

    code_hash = models.BinaryField(max_length=32, unique=True)  # core.crypto.token_digest of the code
    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    redirect_uri = models.TextField()
    scope = models.TextField(blank=True)
    resource = models.JSONField(default=list, blank=True)
    nonce = models.CharField(max_length=512, blank=True)
    code_challenge = models.CharField(max_length=128, blank=True)
    code_challenge_method = models.CharField(max_length=10, blank=True)
    auth_time = models.DateTimeField()
    amr = models.JSONField(default=list)
    acr = models.CharField(max_length=100, blank=True)
    browser_sid = models.CharField(max_length=64, blank=True, help_text="The login session's sid.")
    login_id = models.CharField(
        max_length=32, blank=True, default="", db_default="",
        help_text="The sign-in that issued the code (its login id).",
    )
    dpop_jkt = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="RFC 9449 §10: the exchange must carry a DPoP proof of the key with this JWK thumbprint.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    exchanged_jkt = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="The DPoP key (JWK thumbprint) of the exchange that used the code; empty without DPoP. "
                  "A retry of that exchange must come with the same key.",
    )

    class Meta:
        db_table = "idp_authorization_code"

    # --- Authlib AuthorizationCodeMixin ---------------------------------------------------
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce or None

    def get_auth_time(self) -> int:
        return int(self.auth_time.timestamp())

    def get_acr(self) -> str | None:
        return self.acr or None

    def get_amr(self) -> list[str] | None:
        return list(self.amr) or None

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.expires_at
