"""Admin for Shared Signals: receivers we push to (their Authorization header is
write-only, encrypted at rest), transmitters we accept SETs from, deliveries (retry
action) and the received-SET log (read-only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from core.json_form_fields import JSONList, JSONObject

from .models import DeliveryStatus, ReceivedSet, SetDelivery, SsfReceiver, SsfTransmitter
from .transmitter import enqueue


class ReceiverForm(forms.ModelForm):
    endpoint_url = forms.URLField(max_length=500, assume_scheme="https")
    authorization_header = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Sent as the Authorization header of every push. Leave empty to keep the current value.",
    )
    clear_authorization_header = forms.BooleanField(required=False)

    class Meta:
        model = SsfReceiver
        exclude = ["authorization_header_encrypted"]  # noqa: DJ006  (the secret is never a form field)
        field_classes = {"events_requested": JSONList}  # another shape: the field's error, never a 500

    def save(self, commit: bool = True) -> SsfReceiver:
        receiver: SsfReceiver = super().save(commit=False)
        if self.cleaned_data.get("clear_authorization_header"):
            receiver.set_authorization_header("")
        elif self.cleaned_data.get("authorization_header"):
            receiver.set_authorization_header(self.cleaned_data["authorization_header"])
        if commit:
            receiver.save()
        return receiver


@admin.register(SsfReceiver)
class SsfReceiverAdmin(admin.ModelAdmin):
    form = ReceiverForm
    list_display = ["name", "audience", "endpoint_url", "client", "enabled", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "audience", "endpoint_url"]


class TransmitterForm(forms.ModelForm):
    jwks_uri = forms.URLField(max_length=500, required=False, assume_scheme="https")
    authorization_header = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="If set, pushes must carry exactly this Authorization header (stored as a keyed hash).",
    )

    class Meta:
        model = SsfTransmitter
        exclude = ["authorization_header_hash"]  # noqa: DJ006  (the secret is never a form field)
        field_classes = {"jwks": JSONObject, "allowed_algs": JSONList, "policy": JSONObject}  # never a 500

    def save(self, commit: bool = True) -> SsfTransmitter:
        transmitter: SsfTransmitter = super().save(commit=False)
        if self.cleaned_data.get("authorization_header"):
            transmitter.set_authorization_header(self.cleaned_data["authorization_header"])
        if commit:
            transmitter.save()
        return transmitter


@admin.register(SsfTransmitter)
class SsfTransmitterAdmin(admin.ModelAdmin):
    form = TransmitterForm
    list_display = ["name", "issuer", "slug", "audience", "client", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["name", "issuer", "slug"]
    readonly_fields = ["slug"]


@admin.register(SetDelivery)
class SetDeliveryAdmin(admin.ModelAdmin):
    list_display = ["jti", "receiver", "event_type", "status", "attempts", "last_error", "created_at", "delivered_at"]
    list_filter = ["status", "event_type", "receiver"]
    search_fields = ["jti", "receiver__name"]
    readonly_fields = [f.name for f in SetDelivery._meta.fields]
    actions = ["retry"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Deliver again now (pending, failed or rejected)", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: Any) -> None:
        rows = list(queryset.exclude(status=DeliveryStatus.DELIVERED).values_list("pk", flat=True))
        queryset.filter(pk__in=rows).update(status=DeliveryStatus.PENDING)
        for pk in rows:
            enqueue(pk)
        messages.info(request, f"{len(rows)} deliveries enqueued.")


@admin.register(ReceivedSet)
class ReceivedSetAdmin(admin.ModelAdmin):
    list_display = ["jti", "transmitter", "event_types", "issued_at", "received_at"]
    list_filter = ["transmitter"]
    search_fields = ["jti"]
    readonly_fields = [f.name for f in ReceivedSet._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
