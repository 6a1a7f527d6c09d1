"""django-celery-beat's periodic tasks and schedules: actions kept to staff who may change
them, and every change on record.

Its admin declares enable, disable, toggle and run without ``allowed_permissions``, so Django
offered them to anyone who may *view* the task list: a read-only auditor could stop the
purges, the key rotation or the revocation-list refresh. Here each needs the change
permission, as every action of this site does (``tests/test_admin_action_permissions.py``).

What the schedule runs is a security control (revalidation, key rotation, the revocation
list, the purges), so stopping, running or retiming it is an administrator's decision:
each is a ``schedule.changed`` security event naming the task or schedule, what was done and
who did it (``tests/test_schedule_events.py``). Django's own admin log misses the actions,
which update the rows in bulk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import pluralize
from django_celery_beat.admin import (
    ClockedScheduleAdmin,
    CrontabScheduleAdmin,
    IntervalScheduleAdmin,
    PeriodicTaskAdmin,
    SolarScheduleAdmin,
)
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from kombu.exceptions import OperationalError as KombuOperationalError
from kombu.utils.json import loads

from core.events import EventType, record

logger = logging.getLogger("vigil.ops")


class Change(StrEnum):
    """What an administrator did to a task or schedule (the event's ``change``)."""

    ADDED = "added"
    CHANGED = "changed"
    DELETED = "deleted"
    ENABLED = "enabled"
    DISABLED = "disabled"
    RUN = "run"


def _note(request: HttpRequest, obj: Model, change: Change, **details: Any) -> None:
    record(EventType.SCHEDULE_CHANGED, request=request, admin=request.user.get_username(),
           kind=obj._meta.model_name, name=str(obj), change=change, **details)


class RecordedChanges(admin.ModelAdmin):
    """Adding, editing and deleting a row is on record; deleting a schedule deletes the tasks
    that use it, which its event names (``tasks``)."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            _note(request, obj, Change.ADDED)
        elif form.changed_data:
            _note(request, obj, Change.CHANGED, changed=sorted(form.changed_data))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        tasks = _tasks_using(obj)
        super().delete_model(request, obj)
        _note(request, obj, Change.DELETED, **tasks)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        gone = [(obj, _tasks_using(obj)) for obj in queryset]
        super().delete_queryset(request, queryset)
        for obj, tasks in gone:
            _note(request, obj, Change.DELETED, **tasks)


def _tasks_using(obj: Model) -> dict[str, list[str]]:
    """The periodic tasks a schedule's deletion takes with it (``tasks``), none for a task."""
    using = getattr(obj, "periodictask_set", None)
    names = sorted(using.values_list("name", flat=True)) if using is not None else []
    return {"tasks": names} if names else {}


def _switch_recorded(request: HttpRequest, queryset: QuerySet[PeriodicTask], switching: Q,
                     action: Callable[[HttpRequest, QuerySet[PeriodicTask]], None]) -> None:
    """Upstream's enable, disable or toggle ``action``, with each task it switches on record:
    the selected tasks matching ``switching``, read before, each ``enabled`` or ``disabled``
    by the state it leaves."""
    switched = list(queryset.filter(switching))
    action(request, queryset)
    for task in switched:
        _note(request, task, Change.DISABLED if task.enabled else Change.ENABLED)


for _model in (PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
    admin.site.unregister(_model)


@admin.register(PeriodicTask)
class ChangeOnlyPeriodicTaskAdmin(RecordedChanges, PeriodicTaskAdmin):
    @admin.action(description=PeriodicTaskAdmin.enable_tasks.short_description, permissions=["change"])
    def enable_tasks(self, request: HttpRequest, queryset: Any) -> None:
        _switch_recorded(request, queryset, Q(enabled=False), super().enable_tasks)

    @admin.action(description=PeriodicTaskAdmin.disable_tasks.short_description, permissions=["change"])
    def disable_tasks(self, request: HttpRequest, queryset: Any) -> None:
        _switch_recorded(request, queryset, Q(enabled=True), super().disable_tasks)

    @admin.action(description=PeriodicTaskAdmin.toggle_tasks.short_description, permissions=["change"])
    def toggle_tasks(self, request: HttpRequest, queryset: Any) -> None:
        _switch_recorded(request, queryset, Q(), super().toggle_tasks)

    @admin.action(description=PeriodicTaskAdmin.run_tasks.short_description, permissions=["change"])
    def run_tasks(self, request: HttpRequest, queryset: Any) -> None:
        """Sends every selected task now, as upstream does (its arguments, queue and the
        ``periodic_task_name`` header), one at a time so that each one sent is on record and
        a broker outage is a message, not a 500; runs none when one names no known task."""
        self.celery_app.loader.import_default_modules()
        tasks = list(queryset)
        unknown = [task.task for task in tasks if self.celery_app.tasks.get(task.task) is None]
        if unknown:
            self.message_user(request, f'task "{unknown[0]}" not found', level=messages.ERROR)
            return
        for sent, task in enumerate(tasks):
            try:
                self._send(task)
            except (KombuOperationalError, OSError) as exc:
                logger.warning("admin run of %s not sent: the broker is unavailable (%s)", task.name, exc)
                self.message_user(request, f"The task queue is unavailable: {sent} of {len(tasks)} selected "
                                  "tasks were run. Try the others again shortly.", level=messages.ERROR)
                return
            _note(request, task, Change.RUN)
        self.message_user(request, f"{len(tasks)} task{pluralize(len(tasks))} run now.")

    def _send(self, task: PeriodicTask) -> None:
        options: dict[str, Any] = {"headers": {"periodic_task_name": task.name}}
        if task.queue:
            options["queue"] = task.queue
        self.celery_app.tasks[task.task].apply_async(args=loads(task.args), kwargs=loads(task.kwargs), **options)


@admin.register(IntervalSchedule)
class RecordedIntervalScheduleAdmin(RecordedChanges, IntervalScheduleAdmin):
    pass


@admin.register(CrontabSchedule)
class RecordedCrontabScheduleAdmin(RecordedChanges, CrontabScheduleAdmin):
    pass


@admin.register(SolarSchedule)
class RecordedSolarScheduleAdmin(RecordedChanges, SolarScheduleAdmin):
    pass


@admin.register(ClockedSchedule)
class RecordedClockedScheduleAdmin(RecordedChanges, ClockedScheduleAdmin):
    pass
