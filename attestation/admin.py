"""Django admin of the attestation app: registered apps, the device registry, challenges.

Device actions call ``attestation.flows.registry`` so each decision is a security event.
Play Integrity keys are write-only in the admin (stored encrypted, never displayed).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .encoding import b64decode_any
from .errors import AttestationError
from .flows import registry
from .models import Challenge, Device, RegisteredApp


class RegisteredAppForm(forms.ModelForm):
    play_integrity_decryption_key = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Base64 key from Play Console; leave empty to keep."
    )
    play_integrity_verification_key = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Base64 key from Play Console; leave empty to keep."
    )

    class Meta:
        model = RegisteredApp
        exclude = ["play_integrity_decryption_key_encrypted", "play_integrity_verification_key_encrypted"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        keys = [data.get("play_integrity_decryption_key"), data.get("play_integrity_verification_key")]
        if any(keys) and not all(keys):
            raise forms.ValidationError("Give both Play Integrity keys, or neither.")
        try:
            data["play_integrity_keys"] = tuple(b64decode_any(k) for k in keys) if all(keys) else None
        except AttestationError as exc:
            raise forms.ValidationError("Play Integrity keys must be base64.") from exc
        return data

    def save(self, commit: bool = True) -> RegisteredApp:
        app = super().save(commit=False)
        keys = self.cleaned_data.get("play_integrity_keys")
        if keys:
            app.set_play_integrity_keys(*keys)
        if commit:
            app.save()
        return app


@admin.register(RegisteredApp)
class RegisteredAppAdmin(admin.ModelAdmin):
    form = RegisteredAppForm
    list_display = ["__str__", "client", "platform", "require_attestation", "min_integrity_level"]
    list_filter = ["platform", "require_attestation", "min_integrity_level", "ios_environment"]
    search_fields = ["client__client_id", "ios_bundle_id", "ios_team_id", "android_package_name"]
    raw_id_fields = ["client"]


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["key_id", "platform", "app", "status", "security_level", "counter", "last_attested_at"]
    list_filter = ["platform", "status", "security_level", "requires_reattestation"]
    search_fields = ["key_id"]
    readonly_fields = [
        "platform", "app", "key_id", "public_key", "counter", "security_level", "verdict",
        "first_attested_at", "last_attested_at", "last_asserted_at", "status", "status_reason",
        "status_changed_at", "requires_reattestation",
    ]
    exclude = ["receipt"]
    actions = ["suspend", "revoke", "require_reattestation", "reactivate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def _apply(self, request: HttpRequest, queryset: QuerySet[Device], action: Any, verb: str) -> None:
        devices = list(queryset.select_related("app__client"))
        for device in devices:
            action(device, reason=f"admin: {verb}", actor=request.user)
        self.message_user(request, f"{len(devices)} device(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Suspend selected devices")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        self._apply(request, queryset, registry.suspend_device, "suspended")

    @admin.action(description="Revoke selected devices")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        self._apply(request, queryset, registry.revoke_device, "revoked")

    @admin.action(description="Require re-attestation")
    def require_reattestation(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        self._apply(request, queryset, registry.require_reattestation, "marked for re-attestation")

    @admin.action(description="Reactivate suspended devices")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        self._apply(request, queryset, registry.reactivate_device, "reactivated")


@admin.register(Challenge)
class ChallengeAdmin(admin.ModelAdmin):
    list_display = ["challenge_hash", "client", "purpose", "created_at", "expires_at", "used_at"]
    list_filter = ["purpose"]
    search_fields = ["client__client_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# ---------------------------------------------------------------------- device health (issue 7)
from django.template.response import TemplateResponse  # noqa: E402
from django.urls import path, reverse  # noqa: E402
from django.utils.html import format_html, format_html_join  # noqa: E402

from .health import fleet  # noqa: E402
from .health.rules import default_rules  # noqa: E402
from .health_models import DeviceHealth, HealthPolicy, HealthRule  # noqa: E402


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

    @admin.action(description="Add the built-in default rules as editable rules")
    def add_default_rules(self, request: HttpRequest, queryset: QuerySet[HealthPolicy]) -> None:
        for policy in queryset:
            existing = set(policy.rules.values_list("name", flat=True))
            HealthRule.objects.bulk_create([
                HealthRule(policy=policy, order=i, name=r.name, platform=r.platform, condition=r.condition,
                           parameter=r.parameter, outcome=r.outcome, user_message=r.message[:300])
                for i, r in enumerate(default_rules()) if r.name not in existing
            ])
        self.message_user(request, "Default rules added.", messages.SUCCESS)


@admin.register(DeviceHealth)
class DeviceHealthAdmin(admin.ModelAdmin):
    """Each device's health and the rule that decided; ``fleet/`` counts failures fleet-wide."""

    list_display = ["device_link", "platform", "os_version", "outcome", "deciding_rule", "evaluated_at",
                    "outcome_changed_at"]
    list_filter = ["outcome", "platform", "deciding_condition", "os_version"]
    search_fields = ["device__key_id", "deciding_rule"]
    list_select_related = ["device"]
    fields = ["device_link", "platform", "os_version", "outcome", "deciding_rule", "deciding_condition",
              "allowed_scopes", "access_token_lifetime", "findings_table", "facts_table", "signals",
              "receipt_risk_metric", "receipt_checked_at", "evaluated_at", "outcome_changed_at"]
    readonly_fields = fields

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
        return format_html("<table><tr><th>rule</th><th>outcome</th><th>why</th></tr>{}</table>", rows) if obj.findings else "none"

    @admin.display(description="facts (value, source, trust)")
    def facts_table(self, obj: DeviceHealth) -> str:
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                                ((k, v.get("value"), v.get("source"), v.get("trust")) for k, v in obj.facts.items()))
        return format_html("<table><tr><th>fact</th><th>value</th><th>source</th><th>trust</th></tr>{}</table>", rows)

    def get_urls(self) -> list[Any]:
        fleet_view = self.admin_site.admin_view(self.fleet_view)
        return [path("fleet/", fleet_view, name="attestation_devicehealth_fleet"), *super().get_urls()]

    def fleet_view(self, request: HttpRequest) -> TemplateResponse:
        """How many devices fail which rule, by platform and OS version (optionally one client)."""
        client = request.GET.get("client")
        client_id = int(client) if client and client.isdigit() else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Device health: fleet",
            "opts": self.model._meta,
            "failing": fleet.failing_rules(client_id),
            "outcomes": fleet.outcomes(client_id),
            "changelist": reverse("admin:attestation_devicehealth_changelist"),
        }
        return TemplateResponse(request, "admin/attestation/device_health_fleet.html", context)
