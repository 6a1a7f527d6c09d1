"""When each periodic task last succeeded, shared between processes: a worker writes it (in
the shared cache: Redis in production, the database cache table without Redis) and any web
process reports it on ``/metrics``, so the age is right whichever host Prometheus scrapes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.core.cache import cache
from django_celery_beat.models import PeriodicTask

logger = logging.getLogger(__name__)

KEY_PREFIX = "vigil:task-success:"


def key(task: str) -> str:
    return f"{KEY_PREFIX}{task}"


def mark_success(task: str, now: float | None = None) -> None:
    """Remember that ``task`` just succeeded (kept until overwritten; never fails the task)."""
    try:
        cache.set(key(task), now if now is not None else time.time(), timeout=None)
    except Exception:
        logger.warning("could not store the last success of %s", task, exc_info=True)


@dataclass(frozen=True)
class PeriodicState:
    task: str
    interval_seconds: float | None  # None: a crontab entry
    last_success: float | None  # epoch seconds; None: never succeeded since the cache was filled


def scheduled() -> list[PeriodicState]:
    """Every enabled beat entry (django-celery-beat's rows: the schedule beat runs, as an admin
    may have edited it) with its interval and its task's last success."""
    rows = list(PeriodicTask.objects.filter(enabled=True).select_related("interval").order_by("task"))
    tasks = sorted({row.task for row in rows})
    stored = cache.get_many([key(task) for task in tasks])
    intervals: dict[str, float] = {}
    for row in rows:  # a task in two entries: its shortest interval
        if row.interval is not None:
            seconds = float(row.interval.schedule.run_every.total_seconds())
            intervals[row.task] = min(seconds, intervals.get(row.task, seconds))
    return [PeriodicState(task, intervals.get(task), stored.get(key(task))) for task in tasks]
