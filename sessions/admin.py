"""Admin for device sessions (token families) and the tokens in them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from idp.events import EventType, record

from .flows.revocation import Reason, revoke_session
from .models import AccessToken, DeviceSession, RefreshToken, SessionStatus


STEP_UP_BY_ADMIN = "step_up_by_admin"


class RefreshTokenInline(admin.TabularInline):
    model = RefreshToken
    fields = ["created_at", "expires_at", "rotated_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-created_at"]


@admin.register(DeviceSession)
class DeviceSessionAdmin(admin.ModelAdmin):
    list_display = ["sid", "user", "client", "status", "acr", "created_at", "last_refresh_at", "last_ip", "last_place"]
    list_filter = ["status", "client", "acr"]
    search_fields = ["sid", "user__username", "client__client_id", "last_ip"]
    readonly_fields = [f.name for f in DeviceSession._meta.fields]
    inlines = [RefreshTokenInline]
    actions = ["revoke", "require_step_up"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke (the app must sign in again)")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for session in queryset.select_related("client", "user"):
            revoke_session(session, Reason.REVOKED_BY_ADMIN, request=request, admin=request.user.get_username())

    @admin.action(description="Require step-up (a fresh second factor at the next authorization)")
    def require_step_up(self, request: HttpRequest, queryset: Any) -> None:
        """The next refresh is refused and the next authorization of the user at that client
        demands a second factor verified after this demand (``sessions.risk.stepup``)."""
        from .risk.stepup import require_step_up

        for session in queryset.filter(status=SessionStatus.ACTIVE).select_related("client", "user"):
            require_step_up(session, STEP_UP_BY_ADMIN, request=request, admin=request.user.get_username())


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    list_display = ["jti", "client", "user", "scope", "created_at", "expires_at", "revoked_at"]
    list_filter = ["client"]
    search_fields = ["jti", "user__username", "client__client_id"]
    readonly_fields = [f.name for f in AccessToken._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


# --- Risk evaluation (docs/risk.md) -------------------------------------------------------------

from django.utils import timezone  # noqa: E402

from .risk_models import (  # noqa: E402
    DailyUsage,
    DeviceRiskState,
    RiskPolicy,
    StepUpDemand,
    UsageBaseline,
    UsageReport,
    UserRiskProfile,
)


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


@admin.register(StepUpDemand)
class StepUpDemandAdmin(admin.ModelAdmin):
    list_display = ["user", "client", "acr", "reason", "created_at", "cleared_at"]
    list_filter = ["reason", "client"]
    search_fields = ["user__username", "client__client_id", "session_sid"]
    readonly_fields = [f.name for f in StepUpDemand._meta.fields]
    actions = ["clear"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Clear (no MFA demanded at the next authorization)")
    def clear(self, request: HttpRequest, queryset: Any) -> None:
        for demand in queryset.open().select_related("client", "user"):
            demand.clear(sid="")
            record(EventType.RISK_STEP_UP_CLEARED, reason=demand.reason, user=demand.user, client_id=demand.client.client_id,
                   request=request, admin=request.user.get_username(), demand=demand.pk)


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
