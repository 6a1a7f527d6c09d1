"""django-celery-beat's periodic tasks, with their actions kept to staff who may change them.

Its admin declares enable, disable, toggle and run without ``allowed_permissions``, so Django
offered them to anyone who may *view* the task list: a read-only auditor could stop the
purges, the key rotation or the revocation-list refresh. Here each needs the change
permission, as every action of this site does (``tests/test_admin_action_permissions.py``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class ChangeOnlyPeriodicTaskAdmin(PeriodicTaskAdmin):
    @admin.action(description=PeriodicTaskAdmin.enable_tasks.short_description, permissions=["change"])
    def enable_tasks(self, request: HttpRequest, queryset: Any) -> None:
        super().enable_tasks(request, queryset)

    @admin.action(description=PeriodicTaskAdmin.disable_tasks.short_description, permissions=["change"])
    def disable_tasks(self, request: HttpRequest, queryset: Any) -> None:
        super().disable_tasks(request, queryset)

    @admin.action(description=PeriodicTaskAdmin.toggle_tasks.short_description, permissions=["change"])
    def toggle_tasks(self, request: HttpRequest, queryset: Any) -> None:
        super().toggle_tasks(request, queryset)

    @admin.action(description=PeriodicTaskAdmin.run_tasks.short_description, permissions=["change"])
    def run_tasks(self, request: HttpRequest, queryset: Any) -> None:
        super().run_tasks(request, queryset)
