"""Device health storage (issue 7): per-client health policies and their rules (editable in
the admin), and the last health snapshot of each device with the rule that decided it.

The models of the ``device_health`` app (its own label since the layers moved apart:
docs/architecture.md). Evaluation lives in ``device_health/``; models hold single-row rules.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from attestation.models import Device, Platform
from core.config_cache import ConfigQuerySet

__all__ = ["HealthOutcome", "HealthCondition", "HealthPolicy", "HealthRule", "DeviceHealth", "HealthFinding"]


class HealthOutcome(models.TextChoices):
    """Ordered from the most lenient to the strictest (see ``SEVERITY``)."""

    ALLOW = "allow", "Allow"
    REDUCE = "reduce", "Allow with reduced scopes and a shorter access-token lifetime"
    STEP_UP = "step_up", "Require step-up (the user authorizes again)"
    DENY = "deny", "Deny"


SEVERITY = {HealthOutcome.ALLOW: 0, HealthOutcome.REDUCE: 1, HealthOutcome.STEP_UP: 2, HealthOutcome.DENY: 3}


class HealthCondition(models.TextChoices):
    """What a rule tests; ``parameter`` meanings are in ``device_health/rules.py``."""

    BOOT_NOT_VERIFIED = "boot_not_verified", "Verified boot state is not Verified (Key Attestation)"
    BOOTLOADER_UNLOCKED = "bootloader_unlocked", "Bootloader unlocked (Key Attestation)"
    INTEGRITY_BELOW = (
        "integrity_below",
        "Device recognition below a level (Play Integrity; parameter strong|device|basic)",
    )
    APP_NOT_RECOGNIZED = "app_not_recognized", "App not recognised as genuine (Play Integrity / App Attest)"
    PATCH_OLDER_THAN = "patch_older_than", "OS patch level older than N months (Key Attestation; parameter N)"
    OS_VERSION_BELOW = "os_version_below", "OS version below a version (parameter e.g. 17.0)"
    SCREEN_CAPTURED = "screen_captured", "Screen captured or mirrored (self-reported)"
    DEBUGGER_ATTACHED = "debugger_attached", "Debugger attached (self-reported)"
    APP_ACCESS_RISK = "app_access_risk", "Risky apps detected (Play Integrity appsDetected; parameter: list)"
    PLAY_PROTECT_RISK = "play_protect_risk", "Play Protect verdict (parameter: list of verdicts)"
    DEVICE_ACTIVITY_ABOVE = "device_activity_above", "Recent device activity above a level (parameter LEVEL_1..4)"
    RECEIPT_RISK_ABOVE = "receipt_risk_above", "App Attest receipt risk metric above N (parameter N)"
    UNATTESTED = "unattested", "Device could not attest (fallback: DPoP key only)"
    SOFTWARE_KEY = "software_key", "Key attested by software only, not a TEE or StrongBox (Key Attestation)"
    APP_UNLICENSED = "app_unlicensed", "App not licensed to the user (Play Integrity appLicensingVerdict)"
    DEVICECHECK_FLAGGED = "devicecheck_flagged", "Apple DeviceCheck bit set (parameter 0, 1 or any; default 0)"


PARAMETERS: dict[str, Any] = {
    HealthCondition.INTEGRITY_BELOW: {"strong", "device", "basic"},
    HealthCondition.DEVICE_ACTIVITY_ABOVE: {"LEVEL_1", "LEVEL_2", "LEVEL_3", "LEVEL_4"},
    HealthCondition.PATCH_OLDER_THAN: lambda v: _ascii_digits(v) and len(v) <= 4,
    HealthCondition.RECEIPT_RISK_ABOVE: lambda v: _ascii_digits(v) and len(v) <= 6,
    HealthCondition.DEVICECHECK_FLAGGED: {"0", "1", "any"},
    HealthCondition.OS_VERSION_BELOW: lambda v: all(_ascii_digits(p) for p in v.split(".")) and len(v) <= 20,
}
# What to type, for the admin's error message.
PARAMETER_HINTS: dict[str, str] = {
    HealthCondition.PATCH_OLDER_THAN: "a whole number of months, such as 6",
    HealthCondition.RECEIPT_RISK_ABOVE: "a whole number (Apple's receipt risk metric), such as 10",
    HealthCondition.OS_VERSION_BELOW: "a version of digits and dots, such as 17.4",
}


def _ascii_digits(value: str) -> bool:
    return value.isascii() and value.isdecimal()


class HealthPolicyQuerySet(ConfigQuerySet["HealthPolicy"]):
    """Bulk writes reach every process's rules copy (``core.config_cache``)."""


class HealthRuleQuerySet(ConfigQuerySet["HealthRule"]):
    """Bulk writes (the admin's default rules, ``bulk_create``) reach every process's rules copy."""


class HealthPolicy(models.Model):
    """A client's own device-health policy. Clients without one get the secure defaults."""

    client = models.OneToOneField("clients.Client", on_delete=models.CASCADE, related_name="health_policy")
    include_default_rules = models.BooleanField(
        default=True, help_text="Also apply the built-in secure defaults after this policy's own rules."
    )
    reduced_scopes = models.CharField(
        max_length=500, blank=True, help_text="Scopes kept by a 'reduce' rule without its own; empty: the setting."
    )
    reduced_lifetime = models.PositiveIntegerField(
        null=True, blank=True, help_text="Access-token seconds for a 'reduce' rule without its own."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = HealthPolicyQuerySet.as_manager()

    class Meta:
        db_table = "attestation_health_policy"
        verbose_name_plural = "health policies"

    def __str__(self) -> str:
        return f"Device health policy of {self.client_id}"


class HealthRule(models.Model):
    """One rule: when ``condition`` holds on a device of ``platform`` (any when blank), ``outcome``."""

    policy = models.ForeignKey(HealthPolicy, on_delete=models.CASCADE, related_name="rules")
    order = models.PositiveSmallIntegerField(default=0)
    name = models.SlugField(max_length=60, help_text="Stable name, shown to admins and in events.")
    enabled = models.BooleanField(default=True)
    platform = models.CharField(max_length=10, choices=Platform.choices, blank=True)
    condition = models.CharField(max_length=30, choices=HealthCondition.choices)
    parameter = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=10, choices=HealthOutcome.choices)
    scopes = models.CharField(max_length=500, blank=True, help_text="'reduce': the scopes kept (space-separated).")
    access_token_lifetime = models.PositiveIntegerField(null=True, blank=True, help_text="'reduce': seconds.")
    user_message = models.CharField(max_length=300, blank=True, help_text="What the user should do.")

    objects = HealthRuleQuerySet.as_manager()

    class Meta:
        db_table = "attestation_health_rule"
        ordering = ["policy", "order", "pk"]
        constraints = [models.UniqueConstraint(fields=["policy", "name"], name="attestation_health_rule_name")]

    def __str__(self) -> str:
        return f"{self.name}: {self.condition} -> {self.outcome}"

    def clean(self) -> None:
        """Refuse a parameter the condition cannot read (see ``device_health/rules.py``), and a
        platform on an ``unattested`` rule: an unattested device's platform is only what the app
        said (docs/unattested-devices.md), so a rule for one platform would be escaped by an app
        that says the other."""
        if self.condition == HealthCondition.UNATTESTED and self.platform:
            raise ValidationError({"platform": "Leave blank: an unattested device's platform is only the app's "
                                               "word, so a rule for one platform could be escaped by claiming "
                                               "the other."})
        param = self.parameter.strip()
        wanted = PARAMETERS.get(self.condition)
        if wanted is None or not param:
            return
        if callable(wanted):
            if not wanted(param):
                raise ValidationError({"parameter": f"Not a valid parameter for {self.condition}: enter "
                                                    f"{PARAMETER_HINTS[self.condition]}."})
        elif param not in wanted:
            raise ValidationError({"parameter": f"One of: {', '.join(sorted(wanted))}."})


class DeviceHealth(models.Model):
    """The last evaluation of one device: its facts, the outcome and the rule that decided."""

    device = models.OneToOneField(Device, on_delete=models.CASCADE, related_name="health")
    platform = models.CharField(max_length=10, choices=Platform.choices, db_index=True)
    os_version = models.CharField(max_length=40, blank=True, db_index=True)
    outcome = models.CharField(max_length=10, choices=HealthOutcome.choices, default=HealthOutcome.ALLOW, db_index=True)
    deciding_rule = models.CharField(max_length=60, blank=True)
    deciding_condition = models.CharField(max_length=30, choices=HealthCondition.choices, blank=True)
    # NULL (not restricted) differs from "" (no scope at all).
    allowed_scopes = models.CharField(max_length=500, blank=True, null=True, help_text="None: not restricted.")  # noqa: DJ001
    access_token_lifetime = models.PositiveIntegerField(null=True, blank=True)
    findings = models.JSONField(default=list, blank=True, help_text="Every rule that fired, in order.")
    facts = models.JSONField(default=dict, blank=True, help_text="name -> {value, source, trust}.")
    signals = models.JSONField(default=dict, blank=True, help_text="Self-reported signals of the last attestation.")
    receipt_risk_metric = models.IntegerField(null=True, blank=True)
    receipt_checked_at = models.DateTimeField(null=True, blank=True)
    evaluated_at = models.DateTimeField(default=timezone.now)
    outcome_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "attestation_device_health"
        verbose_name_plural = "device health"

    def __str__(self) -> str:
        return f"{self.device} health: {self.outcome}"

    @property
    def restricts(self) -> bool:
        return self.outcome != HealthOutcome.ALLOW


class HealthFinding(models.Model):
    """One rule failing on one device (replaced at each evaluation): the fleet view counts these."""

    health = models.ForeignKey(DeviceHealth, on_delete=models.CASCADE, related_name="finding_rows")
    rule = models.CharField(max_length=60, db_index=True)
    condition = models.CharField(max_length=30, choices=HealthCondition.choices)
    outcome = models.CharField(max_length=10, choices=HealthOutcome.choices)
    platform = models.CharField(max_length=10, choices=Platform.choices, db_index=True)
    os_version = models.CharField(max_length=40, blank=True, db_index=True)
    detail = models.CharField(max_length=200, blank=True)

    class Meta:
        db_table = "attestation_health_finding"

    def __str__(self) -> str:
        return f"{self.rule} on {self.platform} {self.os_version}"

