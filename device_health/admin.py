"""Django admin of device health: per-client policies with their rules inline, each device's
health with the rule that decided and every fact, and the fleet view (``fleet/``): how far
the devices are trusted and how many fail which rule, by platform and OS version. The device
registry (``attestation/admin.py``) gains its *trust* column and filter here, the layer that
knows both the devices and their health."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from attestation.admin import DeviceAdmin
from attestation.models import Device
from core.events import EventType, record

from . import fleet
from .models import DeviceHealth, HealthPolicy, HealthRule
from .rules import android_app_of, default_rules


class HealthRuleInline(admin.TabularInline):
    model = HealthRule
    extra = 0
    fields = ["order", "name", "enabled", "platform", "condition", "parameter", "outcome", "scopes",
              "access_token_lifetime", "user_message"]


@admin.register(HealthPolicy)
class HealthPolicyAdmin(admin.ModelAdmin):
    list_display = ["client", "include_default_rules", "reduced_scopes", "reduced_lifetime", "updated_at"]
    raw_id_fields = ["client"]
    inlines = [HealthRuleInline]
    actions = ["add_default_rules"]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """After the rules inline is saved: one event with what each rule now earns."""
        super().save_related(request, form, formsets, change)
        policy: HealthPolicy = form.instance
        record(EventType.DEVICE_HEALTH_POLICY_CHANGED, client_id=policy.client.client_id, request=request,
               admin=request.user.get_username(), choices={r.name: r.outcome for r in policy.rules.all()},
               reduced_scopes=policy.reduced_scopes, reduced_lifetime=policy.reduced_lifetime)

    @admin.action(description="Add the built-in default rules as editable rules", permissions=["change"])
    def add_default_rules(self, request: HttpRequest, queryset: QuerySet[HealthPolicy]) -> None:
        for policy in queryset:
            existing = set(policy.rules.values_list("name", flat=True))
            added = HealthRule.objects.bulk_create([
                HealthRule(policy=policy, order=i, name=r.name, platform=r.platform, condition=r.condition,
                           parameter=r.parameter, outcome=r.outcome, user_message=r.message[:300])
                for i, r in enumerate(default_rules(android_app_of(policy.client))) if r.name not in existing
            ])
            if added:  # a policy change like any other: on record
                record(EventType.DEVICE_HEALTH_POLICY_CHANGED, client_id=policy.client.client_id, request=request,
                       admin=request.user.get_username(), added_rules=[rule.name for rule in added])
        self.message_user(request, "Default rules added.", messages.SUCCESS)


@admin.register(DeviceHealth)
class DeviceHealthAdmin(admin.ModelAdmin):
    """Each device's health and the rule that decided; ``fleet/`` counts failures fleet-wide."""

    list_display = ["device_link", "platform", "os_version", "outcome", "deciding_rule", "evaluated_at",
                    "outcome_changed_at"]
    list_filter = ["outcome", "platform", "deciding_condition", "os_version",
                   ("device__attested", admin.BooleanFieldListFilter)]
    search_fields = ["device__key_id", "deciding_rule"]
    list_select_related = ["device"]
    fields = readonly_fields = (
        "device_link", "platform", "os_version", "outcome", "deciding_rule", "deciding_condition",
        "allowed_scopes", "access_token_lifetime", "findings_table", "facts_table", "signals",
        "receipt_risk_metric", "receipt_checked_at", "evaluated_at", "outcome_changed_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="device", ordering="device")
    def device_link(self, obj: DeviceHealth) -> str:
        url = reverse("admin:attestation_device_change", args=[obj.device_id])
        return format_html('<a href="{}">{}</a>', url, obj.device.key_id[:16])

    @admin.display(description="rules that fired")
    def findings_table(self, obj: DeviceHealth) -> str:
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                                ((f.get("rule"), f.get("outcome"), f.get("detail")) for f in obj.findings))
        if not obj.findings:
            return "none"
        return format_html("<table><tr><th>rule</th><th>outcome</th><th>why</th></tr>{}</table>", rows)

    @admin.display(description="facts (value, source, trust)")
    def facts_table(self, obj: DeviceHealth) -> str:
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                                ((k, v.get("value"), v.get("source"), v.get("trust")) for k, v in obj.facts.items()))
        return format_html("<table><tr><th>fact</th><th>value</th><th>source</th><th>trust</th></tr>{}</table>", rows)

    def get_urls(self) -> list[Any]:
        fleet_view = self.admin_site.admin_view(self.fleet_view)
        return [path("fleet/", fleet_view, name="device_health_devicehealth_fleet"), *super().get_urls()]

    def fleet_view(self, request: HttpRequest) -> TemplateResponse:
        """How many devices fail which rule, by platform and OS version (optionally one client).
        Only for staff who may view device health: ``admin_view`` checks staff status alone."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        client = request.GET.get("client")
        client_id = int(client) if client and client.isascii() and client.isdecimal() else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Device health: fleet",
            "opts": self.model._meta,
            "failing": fleet.failing_rules(client_id),
            "outcomes": fleet.outcomes(client_id),
            "trust": fleet.trust_counts(client_id),
            "changelist": reverse("admin:device_health_devicehealth_changelist"),
            "devices": reverse("admin:attestation_device_changelist"),
        }
        return TemplateResponse(request, "admin/attestation/device_health_fleet.html", context)


class TrustFilter(admin.SimpleListFilter):
    """Attested, reduced, unattested or flagged (``fleet.Trust``; the first that holds)."""

    title = "trust"
    parameter_name = "trust"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(t.value, t.label) for t in fleet.Trust]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> QuerySet[Device]:
        value = self.value()
        if value is not None and value in fleet.Trust.values:
            return fleet.of_trust(queryset, fleet.Trust(value))
        return queryset


class FleetDeviceAdmin(DeviceAdmin):
    """The device registry with each device's trust (one annotated query for the page)."""

    list_display = [*DeviceAdmin.list_display[:4], "trust", *DeviceAdmin.list_display[4:]]
    list_filter = [TrustFilter, *DeviceAdmin.list_filter]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Device]:
        return fleet.with_trust(super().get_queryset(request))

    @admin.display(description="trust", ordering="trust")
    def trust(self, obj: Device) -> str:
        return str(getattr(obj, fleet.TRUST, fleet.Trust.ATTESTED)).capitalize()


admin.site.unregister(Device)
admin.site.register(Device, FleetDeviceAdmin)
