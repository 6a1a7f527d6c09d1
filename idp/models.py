"""Provider storage: consents and device authorizations (RFC 8628); clients live in
``clients``, codes in ``sessions``, keys and security events in ``core``."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from clients.models import Client


class Consent(models.Model):
    """Scopes a user has agreed to share with a client; asked again only for new scopes."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    client = models.ForeignKey(Client, on_delete=models.CASCADE)
    scopes = models.JSONField(default=list)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "idp_consent"
        constraints = [models.UniqueConstraint(fields=["user", "client"], name="uniq_consent_user_client")]

    def covers(self, scope: str) -> bool:
        return set(scope.split()) <= set(self.scopes)


class DeviceAuthorizationStatus(models.TextChoices):
    PENDING = "pending", "Waiting for the user"
    APPROVED = "approved", "Approved by the user"
    DENIED = "denied", "Denied by the user"
    REDEEMED = "redeemed", "Tokens issued"


class DeviceAuthorization(models.Model):
    """One device authorization request (RFC 8628 §3.1-3.5). Both codes are stored only as
    hashes: the device code as SHA-256, the short user code as a keyed HMAC (a leaked table
    does not give codes back by brute force)."""

    device_code_hash = models.CharField(max_length=64, unique=True)
    user_code_hash = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey(Client, on_delete=models.CASCADE)
    scope = models.TextField(blank=True)
    resource = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=10, choices=DeviceAuthorizationStatus.choices, default=DeviceAuthorizationStatus.PENDING
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    auth_time = models.DateTimeField(null=True, blank=True)
    amr = models.JSONField(default=list, blank=True)
    acr = models.CharField(max_length=100, blank=True)
    browser_sid = models.CharField(max_length=64, blank=True)
    login_id = models.CharField(
        max_length=32, blank=True, default="", db_default="", help_text="The sign-in that approved it (its login id)."
    )
    interval = models.PositiveIntegerField(help_text="Seconds between polls; grows by 5 with each slow_down.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # What its redemption did, to judge the device code presented again (RFC 8628 §3.5;
    # ``sessions.flows.code_exchange.answer_again``), as an authorization code keeps it.
    redeemed_at = models.DateTimeField(null=True, blank=True)
    redeemed_jkt = models.CharField(
        max_length=64, blank=True, default="", db_default="",
        help_text="The DPoP key (JWK thumbprint) of the poll that redeemed it; empty without DPoP. "
                  "A retry of that poll must come with the same key.",
    )
    session = models.OneToOneField(
        "device_sessions.DeviceSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The token family its redemption started.",
    )

    class Meta:
        db_table = "idp_device_authorization"

    def __str__(self) -> str:
        return f"{self.client.client_id} ({self.status})"

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class PendingLogout(models.Model):
    """A back-channel logout owed to a revoked session's client (OpenID Connect Back-Channel
    Logout 1.0 §2.5). Written in the revoking transaction, so a broker that is down when the
    session ends loses nothing: the delivery task deletes it once the outcome is settled
    (delivered, or refused for good), and ``idp.resend_pending_logouts`` queues again any
    left behind (never queued, or queued long ago and lost)."""

    session = models.OneToOneField("device_sessions.DeviceSession", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "idp_pending_logout"
