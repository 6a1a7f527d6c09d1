"""Celery tasks of risk evaluation (imported by ``sessions/tasks.py`` for autodiscovery).

``recompute_usage_baselines`` takes primitives only, works in chunks and is idempotent
(``acks_late`` is global: a redelivered run writes the same baselines); errors raise so
Celery retries. Beat runs it every ``SESSIONS_RISK_BASELINE_REFRESH_SECONDS`` (the entry is
installed into django-celery-beat, where admins edit it).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from celery import shared_task
from django.utils import timezone

from .baselines import recompute_baselines
from .settings import risk_settings
from .volume import usage_day


@shared_task(name="sessions.recompute_usage_baselines")
def recompute_usage_baselines(day: str | None = None, chunk_size: int | None = None) -> dict[str, int | str]:
    """Recompute every user's baseline for ``day`` (ISO date; default today, UTC)."""
    now = timezone.now()
    target = date.fromisoformat(day) if day else usage_day(now)
    return recompute_baselines(target, now, chunk_size).as_dict()


def schedule(sender: Any, **kwargs: Any) -> None:
    """Add the periodic recomputation to Celery beat."""
    period = risk_settings.BASELINE_REFRESH_SECONDS
    if period > 0:
        sender.add_periodic_task(period, recompute_usage_baselines.s(), name="recompute-usage-baselines")


def _add_to_beat() -> None:
    """At import (autodiscovery imports this in the worker and in beat), like attestation's tasks."""
    from vigil.celery import app

    schedule(app)


_add_to_beat()
