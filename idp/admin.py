"""Admin for clients, signing keys, codes, consents and the security event log."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from . import keys
from .events import record
from .flows.clients import rotate_secret
from .models import AuthorizationCode, Client, Consent, KeyStatus, SecurityEvent, SigningKey
from .redirects import validate_redirect_uri_for_registration


class ClientForm(forms.ModelForm):
    class Meta:
        model = Client
        exclude = ["secret_hash"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        public = data.get("client_type") == "public"
        for field in ("redirect_uris", "post_logout_redirect_uris"):
            for uri in data.get(field) or []:
                problem = validate_redirect_uri_for_registration(str(uri), public)
                if problem:
                    self.add_error(field, f"{uri}: {problem}")
        if public and data.get("token_endpoint_auth_method") != "none":
            self.add_error("token_endpoint_auth_method", "Public clients authenticate with 'none' (and PKCE).")
        if public and "client_credentials" in (data.get("grant_types") or []):
            self.add_error("grant_types", "Public clients cannot use client_credentials.")
        return data


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    form = ClientForm
    list_display = ["name", "client_id", "client_type", "token_endpoint_auth_method", "first_party", "require_mfa", "require_dpop", "is_active"]
    list_filter = ["client_type", "token_endpoint_auth_method", "first_party", "require_mfa", "require_dpop", "is_active"]
    search_fields = ["name", "client_id"]
    readonly_fields = ["created_at"]
    actions = ["rotate_client_secret", "deactivate"]

    @admin.action(description="Rotate the client secret (shown once)")
    def rotate_client_secret(self, request: HttpRequest, queryset: Any) -> None:
        for client in queryset.exclude(client_type="public"):
            secret = rotate_secret(client)
            self.message_user(request, f"New secret for {client.client_id}: {secret}", messages.WARNING)

    @admin.action(description="Deactivate (tokens stop working at their next use)")
    def deactivate(self, request: HttpRequest, queryset: Any) -> None:
        for client in queryset:
            client.is_active = False
            client.save(update_fields=["is_active"])
            record("client.deactivated", client_id=client.client_id, request=request, admin=request.user.get_username())


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    list_display = ["kid", "alg", "status", "activates_at", "retired_at", "remove_after"]
    list_filter = ["alg", "status"]
    search_fields = ["kid"]
    exclude = ["private_key_encrypted"]
    readonly_fields = ["kid", "alg", "status", "public_jwk", "created_at", "activates_at", "retired_at", "remove_after"]
    actions = ["rotate_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Rotate these algorithms now (new key signs immediately)")
    def rotate_now(self, request: HttpRequest, queryset: Any) -> None:
        for alg in sorted(set(queryset.filter(status=KeyStatus.ACTIVE).values_list("alg", flat=True))):
            withdrawn = keys.queued(alg)
            key = keys.rotate(alg, immediately=True)
            record("keys.rotated", alg=alg, kid=key.kid, withdrawn=withdrawn, request=request,
                   admin=request.user.get_username())
            self.message_user(request, f"{alg}: now signing with {key.kid}")


@admin.register(AuthorizationCode)
class AuthorizationCodeAdmin(admin.ModelAdmin):
    list_display = ["client", "user", "created_at", "expires_at", "used_at", "acr"]
    list_filter = ["client", "acr"]
    search_fields = ["user__username", "client__client_id"]
    exclude = ["code_hash", "code_challenge"]
    readonly_fields = [f.name for f in AuthorizationCode._meta.fields if f.name not in {"code_hash", "code_challenge"}]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin):
    list_display = ["user", "client", "scopes", "updated_at"]
    list_filter = ["client"]
    search_fields = ["user__username", "client__client_id"]


@admin.register(SecurityEvent)
class SecurityEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "event_type", "outcome", "reason", "user", "client_id", "session_id", "ip_address"]
    list_filter = ["event_type", "outcome", "reason", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["event_type", "reason", "user__username", "client_id", "session_id", "ip_address"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

from .ssf import admin as ssf_admin  # noqa: E402,F401  (Shared Signals admin)
