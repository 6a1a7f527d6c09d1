"""Shared Signals storage: the receivers we push to, their deliveries, the transmitters
we accept SETs from and the SETs we received (the ``jti`` replay record).

Imported at the end of ``idp/models.py`` so every model belongs to the ``idp`` app.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from core import crypto
from core.json_shapes import listed, mapping

CAEP_BASE = "https://schemas.openid.net/secevent/caep/event-type/"


class CaepEvent(models.TextChoices):
    """CAEP 1.0 §3 event type URIs that Vigil transmits and acts on."""

    SESSION_REVOKED = CAEP_BASE + "session-revoked", "Session revoked"
    CREDENTIAL_CHANGE = CAEP_BASE + "credential-change", "Credential change"
    DEVICE_COMPLIANCE_CHANGE = CAEP_BASE + "device-compliance-change", "Device compliance change"


def _all_events() -> list[str]:
    return [e.value for e in CaepEvent]


def _generate_slug() -> str:
    return crypto.generate_token(12)


def validate_endpoint_url(url: str) -> None:
    """https only; plain http only to a loopback host in development or tests."""
    if url.startswith("https://"):
        return
    local = url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
    if local and (settings.DEBUG or getattr(settings, "TESTING", False)):
        return
    raise ValidationError(f"{url!r}: use https (http only to loopback in development).")


def _validate_event_types(value: Any) -> None:
    if not isinstance(value, list) or not all(v in _all_events() for v in value):
        raise ValidationError(f"Choose among {', '.join(_all_events())}.")


class SsfReceiver(models.Model):
    """A relying service we push SETs to (RFC 8935 push, SSF 1.0 §"Push Delivery using HTTP")."""

    name = models.CharField(max_length=200)
    audience = models.CharField(max_length=255, help_text="The SETs' “aud” claim: identifies this receiver.")
    endpoint_url = models.URLField(max_length=500, help_text="Where SETs are POSTed (application/secevent+jwt).")
    events_requested = models.JSONField(default=_all_events, validators=[_validate_event_types],
                                        help_text="CAEP event type URIs this receiver wants.")
    authorization_header_encrypted = models.TextField(
        blank=True, help_text="Authorization header value sent with every push (encrypted at rest)."
    )
    client = models.ForeignKey(
        "clients.Client", null=True, blank=True, on_delete=models.CASCADE, related_name="ssf_receivers",
        help_text="When set, only events about this client's sessions, users and devices are sent.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "idp_ssf_receiver"

    def __str__(self) -> str:
        return f"{self.name} ({self.audience})"

    def clean(self) -> None:
        validate_endpoint_url(self.endpoint_url)

    def wants(self, event_type: str) -> bool:
        return self.enabled and event_type in listed(self.events_requested)

    def set_authorization_header(self, value: str) -> None:
        self.authorization_header_encrypted = crypto.encrypt(value.encode()) if value else ""

    def authorization_header(self) -> str:
        if not self.authorization_header_encrypted:
            return ""
        return crypto.decrypt(self.authorization_header_encrypted).decode()


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered (202)"
    FAILED = "failed", "Failed (retries exhausted; the sweep tries again)"
    REJECTED = "rejected", "Rejected by the receiver (4xx; not retried)"


class SetDeliveryQuerySet(models.QuerySet["SetDelivery"]):
    def undelivered(self) -> SetDeliveryQuerySet:
        return self.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED])


class SetDelivery(models.Model):
    """One SET for one receiver. The claims are fixed at emission (``jti``, ``iat``); each
    attempt signs them afresh with the active key, so retries are idempotent by ``jti``."""

    receiver = models.ForeignKey(SsfReceiver, on_delete=models.CASCADE, related_name="deliveries")
    jti = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=200, db_index=True)
    claims = models.JSONField()
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = SetDeliveryQuerySet.as_manager()

    class Meta:
        db_table = "idp_ssf_delivery"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.jti} -> {self.receiver_id} ({self.status})"


class ReceiverAction(models.TextChoices):
    REVOKE = "revoke", "Revoke the matching sessions"
    STEP_UP = "step_up", "Require step-up on the matching sessions"
    SUSPEND_DEVICE = "suspend_device", "Suspend the matching device"
    RECORD = "record", "Only record the event"


def default_policy() -> dict[str, str]:
    return {
        CaepEvent.SESSION_REVOKED.value: ReceiverAction.REVOKE.value,
        CaepEvent.CREDENTIAL_CHANGE.value: ReceiverAction.STEP_UP.value,
        CaepEvent.DEVICE_COMPLIANCE_CHANGE.value: ReceiverAction.SUSPEND_DEVICE.value,
    }


def default_algs() -> list[str]:
    return ["ES256", "RS256", "PS256", "EdDSA"]


ALLOWED_ALGS = {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
_TRANSMITTER_SHAPES: dict[str, tuple[type, str]] = {
    "jwks": (dict, "object"), "allowed_algs": (list, "list"), "policy": (dict, "object"),
}


class SsfTransmitter(models.Model):
    """A party whose pushed SETs we accept at ``/ssf/receive/<slug>`` (an MDM, a relying service)."""

    slug = models.CharField(max_length=40, unique=True, default=_generate_slug,
                            help_text="Public id in the push URL /ssf/receive/<slug>.")
    name = models.CharField(max_length=200)
    issuer = models.CharField(max_length=255, help_text="Expected “iss” claim of its SETs.")
    jwks_uri = models.URLField(max_length=500, blank=True, help_text="Fetched with a short cache.")
    jwks = models.JSONField(default=dict, blank=True, help_text="Static JWKS (used instead of jwks_uri).")
    audience = models.CharField(max_length=255, help_text="The “aud” claim its SETs must carry for us.")
    allowed_algs = models.JSONField(default=default_algs, help_text="Accepted JWS algorithms (never none/HS*).")
    policy = models.JSONField(default=default_policy, help_text="Event type URI -> action.")
    client = models.ForeignKey(
        "clients.Client", null=True, blank=True, on_delete=models.CASCADE, related_name="ssf_transmitters",
        help_text="When set, its events only act on this client's sessions and devices.",
    )
    trust_email = models.BooleanField(default=False, help_text="Accept “email” subjects (verified emails only).")
    authorization_header_hash = models.CharField(
        max_length=64, blank=True, help_text="Keyed hash of the Authorization header it must send (optional)."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "idp_ssf_transmitter"

    def __str__(self) -> str:
        return f"{self.name} ({self.issuer})"

    def clean(self) -> None:
        """Each JSON column in its shape first (an object, a list, an object: written otherwise,
        by code or SQL, it is refused here, never read by key or member into a 500)."""
        wrong = {name: f"Enter a JSON {noun}." for name, (kind, noun) in _TRANSMITTER_SHAPES.items()
                 if not isinstance(getattr(self, name), kind)}
        if wrong:
            raise ValidationError(wrong)
        if not self.jwks_uri and not self.jwks.get("keys"):
            raise ValidationError("Give a jwks_uri or a static JWKS.")
        if self.jwks_uri:
            validate_endpoint_url(self.jwks_uri)
        bad = [a for a in self.allowed_algs if not isinstance(a, str) or a not in ALLOWED_ALGS]
        if bad or not self.allowed_algs:
            raise ValidationError(f"Algorithms must be among {sorted(ALLOWED_ALGS)}.")
        for event_type, action in self.policy.items():
            if event_type not in _all_events() or action not in ReceiverAction.values:
                raise ValidationError(f"Policy entry {event_type!r}: {action!r} is not supported.")

    def action_for(self, event_type: str) -> str | None:
        action = mapping(self.policy).get(event_type)
        return action if isinstance(action, str) else None

    def set_authorization_header(self, value: str) -> None:
        self.authorization_header_hash = crypto.keyed_hash(value) if value else ""

    def authorization_matches(self, presented: str) -> bool:
        if not self.authorization_header_hash:
            return True
        return bool(presented) and crypto.keyed_hash_matches(presented, self.authorization_header_hash)


class ReceivedSet(models.Model):
    """Every SET accepted from a transmitter; the unique (transmitter, jti) refuses replays, and
    ``claims_hash`` tells the same SET delivered again (acknowledged, RFC 8935 §2) from another
    SET reusing its ``jti`` (refused)."""

    transmitter = models.ForeignKey(SsfTransmitter, on_delete=models.CASCADE, related_name="received")
    jti = models.CharField(max_length=255)
    claims_hash = models.CharField(
        max_length=64, blank=True, default="", db_default="",
        help_text="SHA-256 of the SET's verified claims (canonical JSON); empty for SETs received before it was kept.",
    )
    event_types = models.JSONField(default=list)
    issued_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    actions = models.JSONField(default=list, blank=True, help_text="What each event did here.")

    class Meta:
        db_table = "idp_ssf_received_set"
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["transmitter", "jti"], name="idp_ssf_received_unique_jti")]

    def __str__(self) -> str:
        return f"{self.jti} from {self.transmitter_id}"


__all__ = [
    "CaepEvent", "DeliveryStatus", "ReceivedSet", "ReceiverAction", "SetDelivery", "SsfReceiver", "SsfTransmitter",
]

