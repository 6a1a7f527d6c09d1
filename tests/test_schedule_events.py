"""Changes to the periodic tasks and their schedules are security events (``schedule.changed``,
``ops/admin.py``): what the schedule runs is a security control (revalidation, key rotation,
the revocation list, the purges), and the admin's bulk actions leave no trace in Django's own
admin log. A change refused or changing nothing records nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.test import Client as HttpClient
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts.models import User
from accounts.testing import sign_in_with_second_factor
from core.events import EventType
from core.models import SecurityEvent

pytestmark = pytest.mark.django_db
TASKS = "admin:django_celery_beat_periodictask_changelist"


@pytest.fixture
def task(db: Any) -> PeriodicTask:
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    return PeriodicTask.objects.create(name="rotate-signing-keys-test", task="idp.rotate_keys_if_due",
                                       interval=every_hour, enabled=True)


def _events() -> list[dict[str, Any]]:
    return [e.details for e in SecurityEvent.objects.filter(event_type=EventType.SCHEDULE_CHANGED).order_by("id")]


def _act(client: HttpClient, action: str, task: PeriodicTask) -> Any:
    return client.post(reverse(TASKS), {"action": action, ACTION_CHECKBOX_NAME: [str(task.pk)]})


def test_disabling_and_enabling_a_task_are_on_record(admin_client: Any, admin_user: Any, task: PeriodicTask) -> None:
    assert _act(admin_client, "disable_tasks", task).status_code == 302
    task.refresh_from_db()
    assert task.enabled is False
    _act(admin_client, "disable_tasks", task)  # already disabled: nothing changes, nothing recorded
    _act(admin_client, "toggle_tasks", task)
    task.refresh_from_db()
    assert task.enabled is True
    assert [(e["change"], e["name"].split(":")[0], e["kind"], e["admin"]) for e in _events()] == [
        ("disabled", task.name, "periodictask", admin_user.username),
        ("enabled", task.name, "periodictask", admin_user.username),
    ]


def test_toggling_and_enabling_record_each_task_they_switch(admin_client: Any, task: PeriodicTask) -> None:
    """Toggling a mixed selection records each task by the state it leaves; enabling records
    only the tasks that were off."""
    off = PeriodicTask.objects.create(name="purge-test", task="idp.purge_expired", interval=task.interval,
                                      enabled=False)
    both = {ACTION_CHECKBOX_NAME: [str(task.pk), str(off.pk)]}
    admin_client.post(reverse(TASKS), {**both, "action": "toggle_tasks"})
    assert sorted((e["name"].split(":")[0], e["change"]) for e in _events()) == [
        ("purge-test", "enabled"), (task.name, "disabled")]
    admin_client.post(reverse(TASKS), {**both, "action": "enable_tasks"})
    assert [(e["name"].split(":")[0], e["change"]) for e in _events()[2:]] == [(task.name, "enabled")]
    assert set(PeriodicTask.objects.values_list("enabled", flat=True)) == {True}


def _inline_management(client: HttpClient, url: str) -> dict[str, Any]:
    """The change page's inline formsets (the tasks using the schedule), as the page posts them."""
    data: dict[str, Any] = {}
    for formset in client.get(url).context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data.update({management.add_prefix(name): value for name, value in management.initial.items()})
        for form in formset.formset.forms:
            data[form.add_prefix("id")] = form.instance.pk
            data[form.add_prefix(formset.formset.fk.name)] = form.instance.interval_id
    return data


def test_retiming_a_schedule_names_the_fields(admin_client: Any, task: PeriodicTask) -> None:
    schedule = task.interval
    url = reverse("admin:django_celery_beat_intervalschedule_change", args=[schedule.pk])
    form = {"every": 365, "period": IntervalSchedule.DAYS, **_inline_management(admin_client, url)}
    response = admin_client.post(url, form)
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.every, schedule.period) == (365, IntervalSchedule.DAYS)
    [event] = _events()
    assert (event["kind"], event["change"], event["changed"]) == ("intervalschedule", "changed", ["every", "period"])
    admin_client.post(url, form)  # saved unchanged: no event
    assert len(_events()) == 1


def test_deleting_a_task_is_on_record(admin_client: Any, task: PeriodicTask) -> None:
    url = reverse("admin:django_celery_beat_periodictask_delete", args=[task.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()
    assert [(e["change"], e["name"].split(":")[0]) for e in _events()] == [("deleted", task.name)]


def test_deleting_a_schedule_names_the_tasks_it_takes_with_it(admin_client: Any, task: PeriodicTask) -> None:
    schedule = task.interval
    url = reverse("admin:django_celery_beat_intervalschedule_delete", args=[schedule.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()
    [event] = _events()
    assert (event["kind"], event["change"], event["tasks"]) == ("intervalschedule", "deleted", [task.name])


def test_running_an_unknown_task_runs_nothing_and_records_nothing(admin_client: Any, task: PeriodicTask) -> None:
    PeriodicTask.objects.filter(pk=task.pk).update(task="no.such.task")
    response = _act(admin_client, "run_tasks", task)
    assert response.status_code == 302
    assert _events() == []


def test_a_viewer_changes_nothing_and_nothing_is_recorded(task: PeriodicTask) -> None:
    viewer = User.objects.create_user("auditor", password="password", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_periodictask"))
    client = sign_in_with_second_factor(HttpClient(), viewer, "password")
    _act(client, "disable_tasks", task)
    task.refresh_from_db()
    assert task.enabled is True and _events() == []


def test_running_tasks_while_the_broker_is_down_says_so_and_records_only_what_ran(
    admin_client: Any, task: PeriodicTask, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broker outage is a readable admin message, not a 500; a task sent before the broker
    went is on record, the ones not sent are not."""
    from celery import current_app
    from kombu.exceptions import OperationalError

    second = PeriodicTask.objects.create(name="purge-test", task="idp.purge_expired_codes_and_tokens",
                                         interval=task.interval, enabled=True)
    current_app.loader.import_default_modules()
    sent: list[str] = []

    def first_only(self: Any, *args: Any, **options: Any) -> None:
        if sent:
            raise OperationalError("[Errno 111] Connection refused")
        sent.append(options["headers"]["periodic_task_name"])

    monkeypatch.setattr(type(current_app.tasks[task.task]), "apply_async", first_only)
    monkeypatch.setattr(type(current_app.tasks[second.task]), "apply_async", first_only)
    response = admin_client.post(reverse(TASKS), {"action": "run_tasks", ACTION_CHECKBOX_NAME: [task.pk, second.pk]},
                                 follow=True)
    assert response.status_code == 200
    assert "unavailable" in response.content.decode()
    assert [(e["change"], e["name"].split(":")[0]) for e in _events()] == [("run", sent[0])]


@pytest.mark.usefixtures("eager_celery")
def test_running_a_task_sends_it_and_is_on_record(admin_client: Any, admin_user: Any, task: PeriodicTask,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Sent as upstream sends it: its arguments and the periodic task's name in the headers
    (and run here: the tests' broker is this process)."""
    from celery import current_app

    current_app.loader.import_default_modules()
    sent: list[tuple[Any, ...]] = []
    task_class = type(current_app.tasks[task.task])
    real = task_class.apply_async

    def recording(self: Any, *args: Any, **options: Any) -> Any:
        sent.append((options["args"], options["kwargs"], options["headers"]))
        return real(self, *args, **options)

    monkeypatch.setattr(task_class, "apply_async", recording)
    response = admin_client.post(reverse(TASKS), {"action": "run_tasks", ACTION_CHECKBOX_NAME: [task.pk]}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["1 task run now."]
    assert sent == [([], {}, {"periodic_task_name": task.name})]
    assert [(e["change"], e["admin"]) for e in _events()] == [("run", admin_user.username)]
