"""Risk evaluation in the admin (docs/risk.md): policies, step-up demands, read-only state."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from core.events import EventType, record
from sessions.admin import DeviceSessionAdmin
from sessions.models import DeviceSession, SessionStatus

from .models import (
    DailyUsage,
    DeviceRiskState,
    RiskPolicy,
    StepUpAnswer,
    StepUpDemand,
    UsageBaseline,
    UsageReport,
    UserRiskProfile,
)
from .stepup import require_step_up


@admin.register(RiskPolicy)
class RiskPolicyAdmin(admin.ModelAdmin):
    """Per-client mapping of each risk signal to record / step_up / revoke."""

    list_display = ["client", "impossible_travel", "volume_anomaly", "new_device", "new_country",
                    "attestation_failures", "integrity_downgrade", "accepts_usage_reports"]
    list_filter = ["accepts_usage_reports", "impossible_travel", "volume_anomaly", "attestation_failures"]
    search_fields = ["client__client_id", "client__name"]
    autocomplete_fields = ["client"]
    readonly_fields = ["updated_at"]

    def save_model(self, request: HttpRequest, obj: RiskPolicy, form: Any, change: bool) -> None:
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        record(EventType.RISK_POLICY_CHANGED, client_id=obj.client.client_id, request=request,
               admin=request.user.get_username(), changes=changes)


class StepUpAnswerInline(admin.TabularInline):
    """The sign-ins (by login id) that completed while the demand was open (risk.stepup): read only,
    written by the sign-in itself."""

    model = StepUpAnswer
    extra = 0
    can_delete = False
    readonly_fields = ["login_id", "created_at"]
    fields = ["login_id", "created_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StepUpDemand)
class StepUpDemandAdmin(admin.ModelAdmin):
    inlines = [StepUpAnswerInline]
    list_display = ["user", "client", "acr", "reason", "created_at", "cleared_at"]
    list_filter = ["reason", "client"]
    search_fields = ["user__username", "client__client_id", "session_sid"]
    readonly_fields = [f.name for f in StepUpDemand._meta.fields]
    actions = ["clear"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Clear (no MFA demanded at the next authorization)", permissions=["change"])
    def clear(self, request: HttpRequest, queryset: Any) -> None:
        for demand in queryset.open().select_related("client", "user"):
            demand.clear(sid="")
            record(EventType.RISK_STEP_UP_CLEARED, reason=demand.reason, user=demand.user,
                   client_id=demand.client.client_id, request=request,
                   admin=request.user.get_username(), demand=demand.pk)


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(UserRiskProfile)
class UserRiskProfileAdmin(_ReadOnly):
    list_display = ["user", "last_ip", "last_country", "last_city", "last_seen_at"]
    list_filter = ["last_country"]
    search_fields = ["user__username", "last_ip"]


@admin.register(UsageReport)
class UsageReportAdmin(_ReadOnly):
    list_display = ["received_at", "client", "user", "bytes", "period_start", "period_end", "report_id"]
    list_filter = ["client"]
    search_fields = ["user__username", "client__client_id", "report_id"]
    date_hierarchy = "received_at"


@admin.register(DailyUsage)
class DailyUsageAdmin(_ReadOnly):
    list_display = ["day", "user", "bytes", "anomaly_at"]
    list_filter = ["day"]
    search_fields = ["user__username"]


@admin.register(UsageBaseline)
class UsageBaselineAdmin(_ReadOnly):
    list_display = ["user", "day", "median_bytes", "history_days", "computed_at"]
    search_fields = ["user__username"]


@admin.register(DeviceRiskState)
class DeviceRiskStateAdmin(_ReadOnly):
    list_display = ["device", "integrity_level", "updated_at"]
    list_filter = ["integrity_level"]


STEP_UP_BY_ADMIN = "step_up_by_admin"


admin.site.unregister(DeviceSession)


@admin.register(DeviceSession)
class RiskDeviceSessionAdmin(DeviceSessionAdmin):
    """The sessions admin, plus the step-up demand of risk evaluation."""

    actions = [*DeviceSessionAdmin.actions, "require_step_up"]

    @admin.action(description="Require step-up (a new sign-in with a second factor at the next authorization)",
                  permissions=["change"])
    def require_step_up(self, request: HttpRequest, queryset: Any) -> None:
        """The next refresh is refused and the next authorization of the user at that client
        demands a new sign-in, with a second factor, begun after this demand: only a sign-in
        that answered the demand clears it (``risk.stepup``, docs/risk.md)."""
        for session in queryset.filter(status=SessionStatus.ACTIVE).select_related("client", "user"):
            require_step_up(session, STEP_UP_BY_ADMIN, request=request, admin=request.user.get_username())
