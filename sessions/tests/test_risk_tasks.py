"""The Celery task recomputing usage baselines: chunked, bounded queries, idempotent."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from risk.models import DailyUsage, UsageBaseline
from risk.tasks import recompute_usage_baselines
from vigil.celery import app
from vigil.schedule import beat_schedule

pytestmark = pytest.mark.django_db

DAY = date(2026, 11, 28)


def seed(users: int, days: int) -> list[Any]:
    people = get_user_model().objects.bulk_create(get_user_model()(username=f"u{i}") for i in range(users))
    DailyUsage.objects.bulk_create(
        DailyUsage(user=person, day=DAY - timedelta(days=d + 1), bytes=(d + 1) * 1000 * (n + 1))
        for n, person in enumerate(people) for d in range(days)
    )
    return people


def test_baselines_are_recomputed_in_chunks(django_assert_max_num_queries):
    people = seed(users=25, days=14)
    with django_assert_max_num_queries(3 * 4 + 1):  # per chunk: ids, totals, upsert; and the final empty page
        result = recompute_usage_baselines(DAY.isoformat(), chunk_size=10)
    assert result == {"day": DAY.isoformat(), "users": 25, "chunks": 3, "with_baseline": 25}
    first = UsageBaseline.objects.get(user=people[0])
    assert first.day == DAY and first.history_days == 14 and first.median_bytes == 7500  # median of 1000..14000


def test_running_twice_gives_the_same_rows():
    seed(users=5, days=8)
    recompute_usage_baselines(DAY.isoformat(), chunk_size=2)
    before = list(UsageBaseline.objects.order_by("user_id").values_list("user_id", "day", "median_bytes", "history_days"))
    recompute_usage_baselines(DAY.isoformat(), chunk_size=3)
    after = list(UsageBaseline.objects.order_by("user_id").values_list("user_id", "day", "median_bytes", "history_days"))
    assert before == after and len(after) == 5
    # 8 reported days and 6 silent ones (zeros): the 7th and 8th of 14 sorted values are 1000 and 2000.
    assert after[0][2] == 1500 and after[0][3] == 8


def test_users_with_too_little_history_get_no_baseline():
    seed(users=2, days=3)
    assert recompute_usage_baselines(DAY.isoformat())["with_baseline"] == 0
    assert set(UsageBaseline.objects.values_list("median_bytes", flat=True)) == {None}


def test_the_task_is_registered_and_scheduled():
    assert "risk.recompute_usage_baselines" in app.tasks
    assert beat_schedule()["recompute-usage-baselines"]["task"] == "risk.recompute_usage_baselines"
