"""Admin: users with their factors (read-only) and an action to reset them; permission groups,
their changes on record.

Factor rows are never edited here directly: every change goes through ``accounts.flows``
so it is a security event. django-otp's own device admins are unregistered for that reason.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.events import EventType, record
from sessions.admin import RevokesFamiliesFirst

from .authstate import signed_in_user
from .flows import factors, password, recovery
from .models import Passkey, User

for _model in (TOTPDevice, StaticDevice, Group):
    try:
        admin.site.unregister(_model)
    except NotRegistered:
        pass


class PasskeyInline(admin.TabularInline):
    model = Passkey
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "name", "created_at", "last_used_at", "backup_eligible", "backup_state", "sign_count", "aaguid",
    )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TotpInline(admin.TabularInline):
    model = TOTPDevice
    extra = 0
    can_delete = False
    fields = readonly_fields = ("name", "confirmed", "created_at", "last_used_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(RevokesFamiliesFirst, DjangoUserAdmin):
    list_display = ["username", "email", "is_active", "require_mfa", "factor_summary", "is_staff"]
    list_filter = [*DjangoUserAdmin.list_filter, "require_mfa"]
    readonly_fields = ["subject", "factor_summary"]
    fieldsets = [
        *(DjangoUserAdmin.fieldsets or ()),
        ("Authentication policy", {"fields": ["subject", "require_mfa", "email_verified", "factor_summary"]}),
    ]
    inlines = [TotpInline, PasskeyInline]
    actions = ["reset_factors"]

    @admin.display(description="Factors")
    def factor_summary(self, obj: User) -> str:
        parts = []
        if TOTPDevice.objects.filter(user=obj, confirmed=True).exists():
            parts.append("TOTP")
        count = Passkey.objects.filter(user=obj).count()
        if count:
            parts.append(f"{count} passkey{'s' if count != 1 else ''}")
        codes = recovery.remaining(obj)
        if codes:
            parts.append(f"{codes} recovery codes")
        return ", ".join(parts) or "password only"

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        """Rights, MFA policy, activity, email: every edit is a security decision, on record.
        A new email is not verified by the old tick (OIDC Core §5.1 ``email_verified``: the
        End-User's address was verified), only by ticking it in the same edit."""
        if change and "email" in form.changed_data and "email_verified" not in form.changed_data:
            obj.email_verified = False
        super().save_model(request, obj, form, change)
        admin_name = signed_in_user(request).get_username()
        if not change:
            record(EventType.USER_CREATED, user=obj, request=request, admin=admin_name)
        elif form.changed_data:
            record(EventType.USER_CHANGED, user=obj, request=request, admin=admin_name,
                   changed=sorted(form.changed_data), is_active=obj.is_active, is_staff=obj.is_staff,
                   is_superuser=obj.is_superuser, require_mfa=obj.require_mfa, email_verified=obj.email_verified)

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        self.delete_queryset(request, User.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        """Deleting an account is a security decision, on record (``user.deleted``) once the row
        is gone: the event names the account by its username, id and ``sub``, and who deleted it."""
        with transaction.atomic():  # the changelist's action runs in no transaction of Django's
            gone = [(user.get_username(), user.pk, user.subject) for user in queryset]
            super().delete_queryset(request, queryset)
            admin_name = signed_in_user(request).get_username()
            for username, user_id, subject in gone:
                record(EventType.USER_DELETED, request=request, admin=admin_name, username=username,
                       user_id=user_id, sub=str(subject))

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        """Django's password form; a password it set is a credential change (``flows.password``),
        in the same transaction: a failure midway leaves the old password and every session."""
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                target = User.objects.filter(pk=id).first()
                if target is not None:
                    password.set_by_admin(request, target, signed_in_user(request))
        return response

    @admin.action(description="Reset second factors (TOTP, passkeys, recovery codes) and sign out apps",
                  permissions=["change"])
    def reset_factors(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            factors.reset_all(user, actor=signed_in_user(request), request=request)
        self.message_user(request, f"Factors reset for {queryset.count()} user(s).", messages.SUCCESS)


class GroupChange(StrEnum):
    """What an administrator did to a permission group (the ``group.changed`` event's ``change``)."""

    ADDED = "added"
    CHANGED = "changed"
    DELETED = "deleted"


@admin.register(Group)
class RecordedGroupAdmin(DjangoGroupAdmin):
    """A group's permissions are its members' rights: adding, editing or deleting a group is a
    security decision, on record (``group.changed``) with the permissions it now grants and how
    many users that reaches. Django's own admin log is no security event."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)  # the permissions are saved here
        if not change:
            self._note(request, form.instance, GroupChange.ADDED)
        elif form.changed_data:
            self._note(request, form.instance, GroupChange.CHANGED, changed=sorted(form.changed_data))

    def delete_model(self, request: HttpRequest, obj: Group) -> None:
        self.delete_queryset(request, Group.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Group]) -> None:
        with transaction.atomic():  # the changelist's action runs in no transaction of Django's
            gone = [_standing(group) for group in queryset]  # read before the rows go
            super().delete_queryset(request, queryset)
            for standing in gone:
                _record(request, GroupChange.DELETED, standing)

    def _note(self, request: HttpRequest, group: Group, change: GroupChange, **details: Any) -> None:
        _record(request, change, {**_standing(group), **details})


def _standing(group: Group) -> dict[str, Any]:
    """What a group grants and to how many users: the ``group.changed`` event's details."""
    permissions = sorted(f"{app}.{codename}" for app, codename in
                         group.permissions.values_list("content_type__app_label", "codename"))
    return {"group": group.name, "permissions": permissions, "members": group.user_set.count()}


def _record(request: HttpRequest, change: GroupChange, details: dict[str, Any]) -> None:
    record(EventType.GROUP_CHANGED, request=request, admin=signed_in_user(request).get_username(), change=change,
           **details)
