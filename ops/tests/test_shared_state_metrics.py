"""Metrics read at scrape time from shared state (docs/operations.md "Metrics"): signing-key
age and time to rotation, each periodic task's last success (written by the worker that ran
it), the SSF backlog; and Celery task runs, failures and durations through Celery's signals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from prometheus_client import CollectorRegistry

from core import keys
from core.models import SigningKey
from core.outage_testing import database_down
from idp.tasks import purge_expired
from ops.collector import SharedStateCollector
from shared_signals.models import SetDelivery, SsfReceiver

from .conftest import Deltas

pytestmark = pytest.mark.django_db
PURGE = "idp.purge_expired_codes_and_tokens"


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SharedStateCollector())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in registry.collect() for s in family.samples}


def test_signing_key_age_and_next_rotation(settings: Any) -> None:
    settings.IDP_KEY_ROTATION_DAYS = 30
    keys.ensure_keys()
    SigningKey.objects.filter(alg="ES256").update(activates_at=timezone.now() - timedelta(days=31))
    values = scrape()
    assert 31 * 86400 - 60 < values[("vigil_signing_key_age_seconds", (("alg", "ES256"),))] < 31 * 86400 + 60
    overdue = values[("vigil_signing_key_next_rotation_seconds", (("alg", "ES256"),))]
    assert -86400 - 60 < overdue < -86400 + 60  # a day overdue: the alert's expression is true
    assert values[("vigil_signing_key_next_rotation_seconds", (("alg", "RS256"),))] > 29 * 86400
    keys.rotate("ES256")  # a successor waits its publish-ahead hour
    waiting = scrape()[("vigil_signing_key_next_rotation_seconds", (("alg", "ES256"),))]
    assert 0 < waiting <= 3600


def test_periodic_task_success_is_shared_and_counted() -> None:
    every_hour = IntervalSchedule.objects.create(every=3600, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="purge-expired-protocol-state", task=PURGE, interval=every_hour)
    runs = Deltas(("vigil_celery_tasks_total", {"task": PURGE, "state": "succeeded"}),
                  ("vigil_celery_task_duration_seconds_count", {"task": PURGE}))
    assert ("vigil_celery_periodic_last_success_age_seconds", (("task", PURGE),)) not in scrape()  # never ran
    purge_expired.apply().get()
    values = scrape()
    assert runs.gained() == [1, 1]
    assert values[("vigil_celery_periodic_interval_seconds", (("task", PURGE),))] == 3600
    assert 0 <= values[("vigil_celery_periodic_last_success_age_seconds", (("task", PURGE),))] < 60


def test_a_task_failing_on_the_database_counts_both() -> None:
    failures = Deltas(("vigil_celery_tasks_total", {"task": PURGE, "state": "failed"}),
                      ("vigil_dependency_errors_total", {"dependency": "database", "where": "task"}))
    with database_down():
        result = purge_expired.apply()
    assert result.failed()
    assert failures.gained() == [1, 1]


def test_ssf_backlog() -> None:
    receiver = SsfReceiver.objects.create(name="RP", audience="https://rp.example.com/caep",
                                          endpoint_url="https://rp.example.com/ssf")
    SetDelivery.objects.create(receiver=receiver, jti="j1", event_type="x", claims={},
                               created_at=timezone.now() - timedelta(minutes=20))
    SetDelivery.objects.create(receiver=receiver, jti="j2", event_type="x", claims={}, status="delivered")
    values = scrape()
    assert values[("vigil_ssf_undelivered", ())] == 1
    assert 1190 < values[("vigil_ssf_oldest_undelivered_age_seconds", ())] < 1260


def test_a_part_that_cannot_be_read_is_left_out_not_the_scrape() -> None:
    with database_down():
        values = scrape()
    assert values[("vigil_metrics_collect_ok", (("part", "signing_keys"),))] == 0
    assert not [name for name, _ in values if name.startswith("vigil_signing_key")]
