"""Shared storage: signing keys (rotated by ``core.keys``) and the security event log."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from .config_cache import ConfigQuerySet


class KeyStatus(models.TextChoices):
    NEXT = "next", "Published, not yet signing"
    ACTIVE = "active", "Signing"
    RETIRING = "retiring", "Published for verification only"
    RETIRED = "retired", "Removed from the JWKS"


class SigningKeyQuerySet(ConfigQuerySet["SigningKey"]):
    def published(self) -> SigningKeyQuerySet:
        return self.filter(status__in=[KeyStatus.NEXT, KeyStatus.ACTIVE, KeyStatus.RETIRING])


class SigningKey(models.Model):
    """One asymmetric signing key; ``kid`` is its RFC 7638 thumbprint."""

    kid = models.CharField(max_length=64, unique=True)
    alg = models.CharField(max_length=10)
    status = models.CharField(max_length=10, choices=KeyStatus.choices, db_index=True)
    public_jwk = models.JSONField()
    private_key_encrypted = models.TextField(help_text="Fernet-encrypted private JWK.")
    created_at = models.DateTimeField(default=timezone.now)
    activates_at = models.DateTimeField(help_text="When it starts signing.")
    retired_at = models.DateTimeField(null=True, blank=True, help_text="When it stopped signing.")
    remove_after = models.DateTimeField(
        null=True, blank=True, help_text="Dropped from the JWKS after this (every token it signed has expired)."
    )

    objects = SigningKeyQuerySet.as_manager()

    class Meta:
        db_table = "idp_signing_key"
        ordering = ["-created_at"]
        constraints = [
            # One signer per algorithm; also the lock that lets only one of several processes
            # starting at once create an algorithm's first key (keys.ensure_keys).
            models.UniqueConstraint(
                fields=["alg"], condition=models.Q(status=KeyStatus.ACTIVE), name="idp_one_active_key_per_alg"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.alg} {self.kid[:12]}… ({self.status})"


class Outcome(StrEnum):
    """How a security decision came out (``SecurityEvent.outcome``), re-exported as
    ``core.events.Outcome``; docs/security-events.md lists exactly these. It lives here, not in
    ``core.events``, because the model's ``choices`` need it and ``core.events`` imports the model.

    Four are general; four belong to one event type each and are stored as they always were
    (the risk metrics and the dashboard count them).
    """

    SUCCESS = "success"  # done or allowed: a token issued, a sign-in, a delivery, a change made
    FAILURE = "failure"  # it did not work: bad evidence or credentials, an error of ours or a dependency's
    DENIED = "denied"  # refused by a rule: policy, throttling, a permission, a replay
    INFO = "info"  # nothing granted or refused: an inactive token introspected, an action that changed nothing
    DETECTED = "detected"  # ``risk.signal``: a risk signal fired
    TAKEN = "taken"  # ``risk.action``: the action refused or cut access (revoke, step-up)
    RECORDED = "recorded"  # ``risk.action``: the action only records (nothing refused)
    REQUIRED = "required"  # ``login.step_up``: the signed-in user must add a factor


class SecurityEvent(models.Model):
    """Append-only record of every security decision (see ``core.events.record``)."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    event_type = models.CharField(max_length=80, db_index=True)
    outcome = models.CharField(max_length=20, choices=[(outcome.value, outcome.value) for outcome in Outcome])
    reason = models.CharField(max_length=80, blank=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    client_id = models.CharField(max_length=100, blank=True, db_index=True)
    session_id = models.CharField(max_length=64, blank=True)  # indexed with id below
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(
        max_length=64, blank=True, default="", db_default="",  # db_default: older code inserting without it
        help_text="The X-Request-ID of the request that recorded it."
    )

    class Meta:
        db_table = "idp_security_event"
        ordering = ["-created_at"]
        # A session's newest events first (risk streaks read them on every refresh): an index
        # scan that stops at the LIMIT, however long the session has lived. Every index costs
        # each insert (two per attested refresh): no index on the few values of ``outcome``,
        # none on ``session_id`` alone (this one covers it) and, on PostgreSQL, none of the
        # ``varchar_pattern_ops`` twins Django adds for LIKE 'x%' (core.0003; nothing queries so).
        indexes = [models.Index(fields=["session_id", "id"], name="idp_secevent_session_id")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.event_type} {self.outcome}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("Security events are append-only.")
        super().save(*args, **kwargs)
