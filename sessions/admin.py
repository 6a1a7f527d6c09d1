"""Admin for device sessions (token families) and the tokens in them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.events import EventType, record

from .flows.revocation import Reason, revoke_access_token, revoke_session
from .models import AccessToken, DeviceSession, RefreshToken


class RevokesFamiliesFirst:
    """For an admin whose deletion cascades to access tokens that are all revoked on record
    first (``delete_queryset`` here, the user's and client's ``pre_delete`` receivers): a live
    token, which cannot be deleted alone, does not block the deletion for someone who may
    delete access tokens; anyone else still needs that permission."""

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)  # type: ignore[misc]
        opts = AccessToken._meta
        if request.user.has_perm(f"{opts.app_label}.delete_{opts.model_name}"):
            perms_needed.discard(opts.verbose_name)
        return deleted, counts, perms_needed, protected


class RefreshTokenInline(admin.TabularInline):
    model = RefreshToken
    fields = readonly_fields = ("created_at", "expires_at", "rotated_at", "revoked_at")
    extra = 0
    can_delete = False
    ordering = ["-created_at"]


@admin.register(DeviceSession)
class DeviceSessionAdmin(RevokesFamiliesFirst, admin.ModelAdmin):
    list_display = ["sid", "user", "client", "status", "acr", "created_at", "last_refresh_at", "last_ip", "last_place"]
    list_filter = ["status", "client", "acr"]
    search_fields = ["sid", "user__username", "client__client_id", "last_ip"]
    readonly_fields = [f.name for f in DeviceSession._meta.fields]
    inlines = [RefreshTokenInline]
    actions = ["revoke"]  # risk adds "require_step_up" (risk/admin.py)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: DeviceSession) -> None:
        self.delete_queryset(request, DeviceSession.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        """A deleted family is revoked first, through the one path (recorded, announced to the
        relying services), instead of vanishing unannounced."""
        for session in queryset.select_related("client", "user"):
            revoke_session(session, Reason.REVOKED_BY_ADMIN, request=request, admin=request.user.get_username())
        queryset.delete()

    @admin.action(description="Revoke (the app must sign in again)", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for session in queryset.select_related("client", "user"):
            revoke_session(session, Reason.REVOKED_BY_ADMIN, request=request, admin=request.user.get_username())


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    list_display = ["jti", "client", "user", "scope", "created_at", "expires_at", "revoked_at"]
    list_filter = ["client"]
    search_fields = ["jti", "user__username", "client__client_id"]
    readonly_fields = [f.name for f in AccessToken._meta.fields]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Deleting a live row was a silent revocation (its JWT then unknown everywhere),
        unrecorded: an admin revokes on record instead. A revoked or expired row changes
        nothing by going (``idp.purge_expired`` removes them in time)."""
        if obj is None or (obj.revoked_at is None and not obj.is_expired()):
            return False
        return bool(super().has_delete_permission(request, obj))

    @admin.action(description="Revoke (this access token only; its family keeps refreshing)", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        admin_name = request.user.get_username()
        for token in queryset.select_related("client", "user"):
            if revoke_access_token(token):
                record(EventType.OAUTH_REVOCATION, reason="access_token", client_id=token.client.client_id,
                       user=token.user, request=request, jti=token.jti, initiator="admin", admin=admin_name)

