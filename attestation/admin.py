"""Django admin of the attestation app: registered apps, the device registry, and (read-only)
the stored Android revocation status lists.

Device actions call ``attestation.flows.registry`` so each decision is a security event.
Play Integrity keys are write-only in the admin (stored encrypted, never displayed).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.json_form_fields import JSONList
from core.read_only_admin import ReadOnlyAdmin

from .encoding import b64decode_any
from .errors import AttestationError
from .flows import registry
from .flows.register_apps import AppRegistrationError, stored_digest
from .models import AndroidRevocationList, Device, RegisteredApp


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
        field_classes = {"android_signing_cert_digests": JSONList}  # another shape: the field's error, not stored

    def clean_android_signing_cert_digests(self) -> list[str]:
        """Each digest as the registration command stores it (base64), or the field's error
        naming the one that is no SHA-256: enrollment would refuse every device otherwise."""
        digests: list[str] = self.cleaned_data.get("android_signing_cert_digests") or []
        stored = []
        for digest in digests:
            try:
                stored.append(stored_digest(digest))
            except AppRegistrationError as exc:
                raise forms.ValidationError(f"{digest[:80]!r}: {exc}", code="digest") from exc
        return stored

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
                    "min_integrity_level", "devicecheck_mode"]
    list_filter = ["platform", "require_attestation", "allow_unattested_devices", "min_integrity_level",
                   "ios_environment", "devicecheck_mode", "devicecheck_on_failure"]
    search_fields = ["client__client_id", "ios_bundle_id", "ios_team_id", "android_package_name"]
    raw_id_fields = ["client"]


def _flag_state(device: Device) -> str:
    if device.devicecheck_flagged_at is not None:
        return "flagged"
    return "pending" if device.devicecheck_flag_requested_at is not None else ""


class DeviceCheckFlagFilter(admin.SimpleListFilter):
    """Devices flagged at Apple (DeviceCheck), or waiting for Apple to confirm."""

    title = "DeviceCheck flag"
    parameter_name = "devicecheck_flag"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("flagged", "Flagged at Apple"), ("pending", "Flag pending")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> QuerySet[Device]:
        if self.value() == "flagged":
            return queryset.filter(devicecheck_flagged_at__isnull=False)
        if self.value() == "pending":
            return queryset.filter(devicecheck_flag_requested_at__isnull=False, devicecheck_flagged_at__isnull=True)
        return queryset


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["key_id", "platform", "app", "status", "attested", "security_level", "counter",
                    "last_attested_at", "devicecheck_flag"]
    list_filter = ["platform", "status", "attested", "security_level", "requires_reattestation",
                   DeviceCheckFlagFilter]
    search_fields = ["key_id"]
    readonly_fields = [
        "platform", "app", "key_id", "public_key", "counter", "security_level", "verdict",
        "first_attested_at", "last_attested_at", "last_asserted_at", "status", "status_reason",
        "status_changed_at", "requires_reattestation", "attested", "devicecheck_flag_requested_at",
        "devicecheck_flagged_at",
    ]
    exclude = ["receipt", "devicecheck_token_encrypted"]
    actions = ["suspend", "revoke", "revoke_and_flag", "require_reattestation", "reactivate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Device) -> None:
        self.delete_queryset(request, Device.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        """The delete page and the changelist's action, each device on record (``registry``)."""
        registry.delete_devices(list(queryset.select_related("app__client")), actor=request.user)

    def _apply(self, request: HttpRequest, queryset: QuerySet[Device], action: Any, verb: str) -> None:
        devices = list(queryset.select_related("app__client"))
        for device in devices:
            action(device, reason=f"admin: {verb}", actor=request.user)
        self.message_user(request, f"{len(devices)} device(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Suspend selected devices", permissions=["change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        self._apply(request, queryset, registry.suspend_device, "suspended")

    @admin.action(description="Revoke selected devices", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        self._apply(request, queryset, registry.revoke_device, "revoked")

    @admin.action(description="Revoke for abuse and flag on Apple (DeviceCheck bit)", permissions=["change"])
    def revoke_and_flag(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        devices = list(queryset.select_related("app__client"))
        queued = sum(registry.revoke_and_flag_device(d, reason="admin: revoked for abuse", actor=request.user)
                     for d in devices)
        self.message_user(request, f"{len(devices)} device(s) revoked; {queued} queued to be flagged at Apple "
                          "(the others never sent a DeviceCheck token).", messages.SUCCESS)

    @admin.display(description="DeviceCheck flag")
    def devicecheck_flag(self, device: Device) -> str:
        return _flag_state(device)

    @admin.action(description="Require re-attestation", permissions=["change"])
    def require_reattestation(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        self._apply(request, queryset, registry.require_reattestation, "marked for re-attestation")

    @admin.action(description="Reactivate suspended devices", permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        self._apply(request, queryset, registry.reactivate_device, "reactivated")


@admin.register(AndroidRevocationList)
class AndroidRevocationListAdmin(ReadOnlyAdmin):
    """Read-only: the versions the refresh task stored; the newest is what every host verifies
    with. Only the task writes them (a change here would not validate nor reach other hosts)."""

    list_display = ["pk", "entry_count", "source", "fetched_at", "checked_at"]
    readonly_fields = ["entry_count", "sha256", "source", "fetched_at", "checked_at", "entries"]
