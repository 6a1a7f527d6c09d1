"""Celery tasks of risk evaluation (imported by ``sessions/tasks.py`` for autodiscovery).

``recompute_usage_baselines`` takes primitives only, works in chunks and is idempotent
(``acks_late`` is global: a redelivered run writes the same baselines); errors raise so
Celery retries. Beat runs it every ``SESSIONS_RISK_BASELINE_REFRESH_SECONDS`` (the entry is
installed into django-celery-beat, where admins edit it).
"""

from __future__ import annotations

from datetime import date

from celery import shared_task
from django.utils import timezone

from .baselines import recompute_baselines
from .volume import usage_day


@shared_task(name="risk.recompute_usage_baselines")
def recompute_usage_baselines(day: str | None = None, chunk_size: int | None = None) -> dict[str, int | str]:
    """Recompute every user's baseline for ``day`` (ISO date; default today, UTC)."""
    now = timezone.now()
    target = date.fromisoformat(day) if day else usage_day(now)
    return recompute_baselines(target, now, chunk_size).as_dict()
