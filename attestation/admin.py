"""Django admin of the attestation app: registered apps and the device registry.

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
from .models import Device, RegisteredApp


class RegisteredAppForm(forms.ModelForm):
    play_integrity_decryption_key = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Base64 key from Play Console; leave empty to keep."
    )
    play_integrity_verification_key = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Base64 key from Play Console; leave empty to keep."
    )

    class Meta:
        model = RegisteredApp
        # The encrypted columns are never form fields (the ModelAdmin's fieldsets choose what is shown).
        exclude = ["play_integrity_decryption_key_encrypted", "play_integrity_verification_key_encrypted"]  # noqa: DJ006

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        keys = [data.get("play_integrity_decryption_key"), data.get("play_integrity_verification_key")]
        if any(keys) and not all(keys):
            raise forms.ValidationError("Give both Play Integrity keys, or neither.")
        try:
            data["play_integrity_keys"] = tuple(b64decode_any(k) for k in keys if k) if all(keys) else None
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
    list_display = ["__str__", "client", "platform", "require_attestation", "allow_unattested_devices",
                    "min_integrity_level"]
    list_filter = ["platform", "require_attestation", "allow_unattested_devices", "min_integrity_level",
                   "ios_environment"]
    search_fields = ["client__client_id", "ios_bundle_id", "ios_team_id", "android_package_name"]
    raw_id_fields = ["client"]


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["key_id", "platform", "app", "status", "attested", "security_level", "counter",
                    "last_attested_at"]
    list_filter = ["platform", "status", "attested", "security_level", "requires_reattestation"]
    search_fields = ["key_id"]
    readonly_fields = [
        "platform", "app", "key_id", "public_key", "counter", "security_level", "verdict",
        "first_attested_at", "last_attested_at", "last_asserted_at", "status", "status_reason",
        "status_changed_at", "requires_reattestation", "attested",
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
