"""Admin for clients, signing keys, codes, consents and the security event log."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from clients.flows.branding import remove_logo, scope_descriptions_problem, store_logo
from clients.flows.registration import (
    ClientRegistrationError,
    backchannel_logout_uri_problem,
    pkce_waiver_problem,
    resolve_auth_methods,
    rotate_secret,
    served_resources_problem,
)
from clients.logo import LogoError, read_logo
from clients.models import AuthMethod, Client, ClientLogo, ClientType
from clients.profiles import profile_problem, request_uris_problem
from clients.redirects import validate_redirect_uri_for_registration
from core import keys
from core.app_settings import app_settings
from core.events import EventType, record
from core.json_form_fields import JSONList, JSONObject
from core.models import KeyStatus, SecurityEvent, SigningKey
from core.read_only_admin import ReadOnlyAdmin
from sessions.admin import RevokesFamiliesFirst
from sessions.models import AuthorizationCode

from .models import Consent, DeviceAuthorization


class ClientForm(forms.ModelForm):
    """The client's fields, with its authentication methods as one list of checkboxes (the
    first ticked, or the one it had, stays the registered ``token_endpoint_auth_method``)."""

    auth_methods = forms.MultipleChoiceField(
        choices=AuthMethod.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="How this client may authenticate. A confidential client registered for a secret usually "
        "accepts both client_secret_basic and client_secret_post (the same secret).",
    )

    backchannel_logout_uri = forms.URLField(
        required=False, max_length=2000, assume_scheme="https",
        help_text=Client._meta.get_field("backchannel_logout_uri").help_text,
    )
    logo_file = forms.FileField(
        required=False, label="Logo",
        help_text="PNG, JPEG or WebP; checked by its content, scaled to 256 px and stored as PNG.",
    )
    remove_logo = forms.BooleanField(required=False, help_text="Show no logo for this client.")
    privacy_policy_url = forms.URLField(required=False, max_length=500, assume_scheme="https",
                                        help_text="https only; linked on the sign-in pages.")
    terms_url = forms.URLField(required=False, max_length=500, assume_scheme="https",
                               help_text="https only; linked on the sign-in pages.")

    class Meta:
        model = Client
        exclude = ["secret_hash", "token_endpoint_auth_method", "additional_auth_methods"]  # noqa: DJ006  (secrets never a field)
        field_classes = {  # each JSON column in its one shape: another is the field's error, never a 500
            **dict.fromkeys(["redirect_uris", "post_logout_redirect_uris", "allowed_scopes", "grant_types",
                             "allowed_audiences", "served_resources", "token_exchange_audiences", "request_uris"],
                            JSONList),
            **dict.fromkeys(["jwks", "scope_descriptions"], JSONObject),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["auth_methods"] = self.instance.auth_methods()
        else:
            self.initial["auth_methods"] = [AuthMethod.SECRET_BASIC, AuthMethod.SECRET_POST]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        public = data.get("client_type") == ClientType.PUBLIC
        for field in ("redirect_uris", "post_logout_redirect_uris"):
            for uri in data.get(field) or []:
                problem = validate_redirect_uri_for_registration(str(uri), public)
                if problem:
                    self.add_error(field, f"{uri}: {problem}")
        if public and "client_credentials" in (data.get("grant_types") or []):
            self.add_error("grant_types", "Public clients cannot use client_credentials.")
        self._clean_auth_methods(data, public)
        problem = pkce_waiver_problem(public, bool(data.get("require_pkce")), list(data.get("allowed_scopes") or []))
        if problem:
            self.add_error("require_pkce", problem)
        for field in ("served_resources", "token_exchange_audiences"):
            if problem := served_resources_problem(list(data.get(field) or [])):
                self.add_error(field, problem)
        if problem := backchannel_logout_uri_problem(str(data.get("backchannel_logout_uri") or "")):
            self.add_error("backchannel_logout_uri", problem)
        if public and data.get("token_exchange_audiences"):
            self.add_error("token_exchange_audiences", "Only confidential clients exchange tokens (RFC 8693).")
        methods = data.get("auth_methods") or []
        problem = profile_problem(str(data.get("profile") or ""), public, methods, str(data.get("signing_alg") or ""),
                                  [str(uri) for uri in data.get("redirect_uris") or []])
        if problem and "auth_methods" not in self.errors:
            self.add_error("profile", problem)
        problem = request_uris_problem(list(data.get("request_uris") or []))
        if problem:
            self.add_error("request_uris", problem)
        scopes = list(data.get("allowed_scopes") or [])
        problem = scope_descriptions_problem(data.get("scope_descriptions") or {}, scopes)
        if problem:
            self.add_error("scope_descriptions", problem)
        return data

    def clean_logo_file(self) -> Any:
        upload = self.cleaned_data.get("logo_file")
        if not upload:
            return None
        if upload.size > app_settings.CLIENT_LOGO_MAX_BYTES:
            raise forms.ValidationError(f"The logo is larger than {app_settings.CLIENT_LOGO_MAX_BYTES // 1024} KB.")
        try:
            return read_logo(upload.read())
        except LogoError as error:
            raise forms.ValidationError(str(error)) from error

    def _clean_auth_methods(self, data: dict[str, Any], public: bool) -> None:
        chosen = [m for m in self.instance.auth_methods() if m in (data.get("auth_methods") or [])]
        chosen += [m for m in data.get("auth_methods") or [] if m not in chosen]
        try:
            data["auth_methods"] = resolve_auth_methods(public, chosen, data.get("jwks"))
        except ClientRegistrationError as error:
            self.add_error("auth_methods", str(error))

    def save(self, commit: bool = True) -> Client:
        methods = self.cleaned_data["auth_methods"]
        self.instance.token_endpoint_auth_method = methods[0]
        self.instance.additional_auth_methods = methods[1:]
        return super().save(commit=commit)


@admin.register(Client)
class ClientAdmin(RevokesFamiliesFirst, admin.ModelAdmin):
    form = ClientForm
    list_display = ["name", "client_id", "client_type", "auth_methods_shown", "signing_alg", "require_pkce",
                    "first_party", "require_mfa", "require_dpop", "profile", "is_active"]
    list_filter = ["client_type", "token_endpoint_auth_method", "signing_alg", "first_party", "require_mfa",
                   "require_dpop", "profile", "is_active"]
    search_fields = ["name", "client_id"]
    readonly_fields = ["created_at", "current_logo"]
    actions = ["rotate_client_secret", "deactivate"]

    @admin.display(description="Current logo")
    def current_logo(self, client: Client) -> str:
        if not client.pk or not ClientLogo.objects.filter(client=client).exists():
            return "none"
        return format_html('<img src="{}" alt="" width="48" height="48">',
                           reverse("branding-client-logo", args=[client.client_id]))

    def save_model(self, request: HttpRequest, obj: Client, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        admin_name = request.user.get_username()
        if not change:
            record(EventType.CLIENT_REGISTERED, client_id=obj.client_id, request=request, admin=admin_name)
        elif form.changed_data:  # consent, MFA, redirect URIs, activity...: every change is on record
            record(EventType.CLIENT_CHANGED, client_id=obj.client_id, request=request, admin=admin_name,
                   changed=sorted(form.changed_data), is_active=obj.is_active)
        if form.cleaned_data.get("logo_file") is not None:
            store_logo(obj, form.cleaned_data["logo_file"])
        elif form.cleaned_data.get("remove_logo"):
            remove_logo(obj)

    @admin.display(description="Authentication methods")
    def auth_methods_shown(self, client: Client) -> str:
        return ", ".join(client.auth_methods())

    @admin.action(description="Rotate the client secret (shown once)", permissions=["change"])
    def rotate_client_secret(self, request: HttpRequest, queryset: Any) -> None:
        for client in queryset.exclude(client_type="public"):
            if not client.uses_secret():
                self.message_user(request, f"{client.client_id} does not authenticate with a secret.", messages.INFO)
                continue
            secret = rotate_secret(client, request, admin=request.user.get_username())
            self.message_user(request, f"New secret for {client.client_id}: {secret}", messages.WARNING)

    @admin.action(description="Deactivate (its sessions and tokens end at once)", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: Any) -> None:
        for client in queryset:
            client.is_active = False
            client.save(update_fields=["is_active"])
            record(
                EventType.CLIENT_DEACTIVATED,
                client_id=client.client_id,
                request=request,
                admin=request.user.get_username(),
            )


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

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Keys leave by the rotation's schedule (published, retired, removed after the tokens
        they signed expire); deleting one would break those tokens unrecorded."""
        return False

    @admin.action(description="Rotate these algorithms now (new key signs immediately)", permissions=["change"])
    def rotate_now(self, request: HttpRequest, queryset: Any) -> None:
        for alg in sorted(set(queryset.filter(status=KeyStatus.ACTIVE).values_list("alg", flat=True))):
            key, withdrawn = keys.rotate_now(alg)
            record(
                EventType.KEYS_ROTATED,
                alg=alg,
                kid=key.kid,
                withdrawn=withdrawn,
                request=request,
                admin=request.user.get_username(),
            )
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
    """Consents are the user's to give (``/authorize``); an admin may only withdraw them, and
    each withdrawal is recorded (the next authorization asks the user again)."""

    list_display = ["user", "client", "scopes", "updated_at"]
    list_filter = ["client"]
    search_fields = ["user__username", "client__client_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Consent) -> None:
        self.delete_queryset(request, Consent.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for consent in queryset.select_related("user", "client"):
            record(EventType.OAUTH_CONSENT_REVOKED, user=consent.user, client_id=consent.client.client_id,
                   request=request, admin=request.user.get_username(), scopes=consent.scopes)
        queryset.delete()


@admin.register(SecurityEvent)
class SecurityEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "event_type", "outcome", "reason", "user", "client_id", "session_id", "ip_address"]
    list_filter = ["event_type", "outcome", "reason", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["event_type", "reason", "user__username", "client_id", "session_id", "ip_address", "=request_id"]
    date_hierarchy = "created_at"


@admin.register(DeviceAuthorization)
class DeviceAuthorizationAdmin(admin.ModelAdmin):
    """RFC 8628 requests, read-only: the codes are hashes and only their user decides."""

    list_display = ["client", "status", "user", "created_at", "expires_at", "interval"]
    list_filter = ["status"]
    search_fields = ["client__client_id", "user__username"]
    exclude = ["device_code_hash", "user_code_hash"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
