"""Storage of continuous risk evaluation (docs/risk.md): per-client policies, the state each
signal compares against (a user's last location and countries, a device's last integrity
level), usage reports with per-user daily totals and baselines, and open step-up demands.

The ``risk`` app's own models and migrations; the logic that reads and writes them lives
beside them in ``risk/``.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

__all__ = [
    "RiskSignal",
    "RiskAction",
    "RiskPolicy",
    "UserRiskProfile",
    "DeviceRiskState",
    "UsageReport",
    "DailyUsage",
    "UsageBaseline",
    "StepUpDemand",
    "StepUpAnswer",
]


class RiskSignal(models.TextChoices):
    IMPOSSIBLE_TRAVEL = "impossible_travel", "Impossible travel"
    VOLUME_ANOMALY = "volume_anomaly", "Data-volume anomaly"
    NEW_DEVICE = "new_device", "New device"
    NEW_COUNTRY = "new_country", "New country"
    ATTESTATION_FAILURES = "attestation_failures", "Streak of failed attestations"
    INTEGRITY_DOWNGRADE = "integrity_downgrade", "Downgraded integrity verdict"


class RiskAction(models.TextChoices):
    """Weakest first: when several signals fire together the strongest action is taken."""

    RECORD = "record", "Record only"
    STEP_UP = "step_up", "Require step-up (MFA)"
    REVOKE = "revoke", "Revoke the session and its token family"


ACTION_ORDER: list[str] = [RiskAction.RECORD, RiskAction.STEP_UP, RiskAction.REVOKE]

#: Secure defaults, used for a client without a policy row and as the row's field defaults.
DEFAULT_ACTIONS: dict[str, str] = {
    RiskSignal.IMPOSSIBLE_TRAVEL: RiskAction.STEP_UP,
    RiskSignal.VOLUME_ANOMALY: RiskAction.STEP_UP,
    RiskSignal.NEW_DEVICE: RiskAction.RECORD,
    RiskSignal.NEW_COUNTRY: RiskAction.RECORD,
    RiskSignal.ATTESTATION_FAILURES: RiskAction.REVOKE,
    RiskSignal.INTEGRITY_DOWNGRADE: RiskAction.STEP_UP,
}


def _action_field(signal: str) -> models.CharField:
    return models.CharField(
        max_length=10, choices=RiskAction.choices, default=DEFAULT_ACTIONS[signal],
        help_text=f"Action when '{RiskSignal(signal).label}' fires.",
    )


class RiskPolicy(models.Model):
    """A client's mapping of each risk signal to an action (edited in the admin)."""

    client = models.OneToOneField("clients.Client", on_delete=models.CASCADE, related_name="risk_policy")
    impossible_travel = _action_field(RiskSignal.IMPOSSIBLE_TRAVEL)
    volume_anomaly = _action_field(RiskSignal.VOLUME_ANOMALY)
    new_device = _action_field(RiskSignal.NEW_DEVICE)
    new_country = _action_field(RiskSignal.NEW_COUNTRY)
    attestation_failures = _action_field(RiskSignal.ATTESTATION_FAILURES)
    integrity_downgrade = _action_field(RiskSignal.INTEGRITY_DOWNGRADE)
    accepts_usage_reports = models.BooleanField(
        default=False, help_text="This (confidential) client may report its users' data volume to POST /usage."
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "sessions_risk_policy"
        verbose_name_plural = "risk policies"

    def __str__(self) -> str:
        return f"risk policy of {self.client}"

    def action_for(self, signal: str) -> str:
        return str(getattr(self, signal))


class UserRiskProfile(models.Model):
    """What the location signals compare against: the user's last located request and the
    countries seen so far (impossible travel, new country)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_profile")
    last_ip = models.GenericIPAddressField(null=True, blank=True)
    last_latitude = models.FloatField(null=True, blank=True)
    last_longitude = models.FloatField(null=True, blank=True)
    last_accuracy_km = models.FloatField(default=0)
    last_country = models.CharField(max_length=2, blank=True)
    last_city = models.CharField(max_length=100, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    countries = models.JSONField(default=list, blank=True, help_text="ISO 3166-1 codes seen for this user.")

    class Meta:
        db_table = "sessions_user_risk_profile"

    def __str__(self) -> str:
        return f"risk profile of {self.user}"


class DeviceRiskState(models.Model):
    """The strongest Play Integrity device recognition level seen last for a device."""

    device = models.OneToOneField("attestation.Device", on_delete=models.CASCADE, related_name="risk_state")
    integrity_level = models.CharField(max_length=10, blank=True, help_text="strong, device, basic or none.")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "sessions_device_risk_state"


class UsageReport(models.Model):
    """One report from a relying service: bytes a user moved during a period."""

    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="usage_reports")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_reports")
    session = models.ForeignKey(
        "device_sessions.DeviceSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_reports"
    )
    report_id = models.CharField(max_length=64, blank=True, help_text="The reporter's id, for idempotent retries.")
    bytes = models.PositiveBigIntegerField()
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "sessions_usage_report"
        constraints = [
            models.UniqueConstraint(
                fields=["client", "report_id"], condition=~models.Q(report_id=""), name="usage_report_id_per_client"
            )
        ]


class DailyUsage(models.Model):
    """A user's total reported bytes on one UTC day."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_usage")
    day = models.DateField()
    bytes = models.PositiveBigIntegerField(default=0)
    anomaly_at = models.DateTimeField(null=True, blank=True, help_text="When this day was judged anomalous (once).")

    class Meta:
        db_table = "sessions_daily_usage"
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="daily_usage_per_user_day")]


class UsageBaseline(models.Model):
    """The rolling median of a user's daily volume before ``day`` (recomputed by Celery)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_baseline")
    day = models.DateField(help_text="The day this baseline judges (its window ends the day before).")
    median_bytes = models.PositiveBigIntegerField(null=True, blank=True, help_text="Empty: not enough history.")
    history_days = models.PositiveSmallIntegerField(default=0)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "sessions_usage_baseline"


class StepUpDemandQuerySet(models.QuerySet["StepUpDemand"]):
    def open(self) -> StepUpDemandQuerySet:
        return self.filter(cleared_at__isnull=True)


class StepUpDemand(models.Model):
    """The next authorization of ``user`` at ``client`` must reach ``acr`` (MFA), from a sign-in
    made after the demand opened: one of its ``answers`` (``risk.stepup``)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="step_up_demands")
    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="step_up_demands")
    acr = models.CharField(max_length=100)
    reason = models.CharField(max_length=80)
    session_sid = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by_sid = models.CharField(max_length=64, blank=True)

    objects = StepUpDemandQuerySet.as_manager()

    class Meta:
        db_table = "sessions_step_up_demand"
        indexes = [models.Index(fields=["user", "client", "cleared_at"])]

    def __str__(self) -> str:
        return f"{self.user} @ {self.client} must reach {self.acr} ({self.reason})"

    def clear(self, sid: str, now: datetime | None = None) -> None:
        self.cleared_at, self.cleared_by_sid = now or timezone.now(), sid
        self.save(update_fields=["cleared_at", "cleared_by_sid"])



class StepUpAnswer(models.Model):
    """A sign-in (by its login id, ``accounts.authstate.AuthState.login_id``) that completed
    while ``demand`` was open, so after it opened: written by the sign-in itself, for the demands
    its own statement found committed (``risk.stepup.answer_open_demands``). No clock is compared."""

    demand = models.ForeignKey(StepUpDemand, on_delete=models.CASCADE, related_name="answers")
    login_id = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "risk_step_up_answer"
        constraints = [models.UniqueConstraint(fields=["demand", "login_id"], name="step_up_answer_per_login")]

    def __str__(self) -> str:
        return f"sign-in {self.login_id} answers {self.demand_id}"
