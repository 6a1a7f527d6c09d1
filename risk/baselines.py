"""Recomputing every user's usage baseline in chunks (issue 6 item 4).

Users are walked by primary key (keyset pagination, ``SESSIONS_RISK_BASELINE_CHUNK_SIZE``
at a time), so memory stays bounded by one chunk. Each chunk reads the daily totals of
its users' windows in one query and upserts their baselines in one statement: running it
twice, or on two workers at once, gives the same rows (idempotent).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

from .models import DailyUsage, UsageBaseline
from .settings import risk_settings
from .volume import median_of, window


@dataclass
class BaselineRun:
    day: str
    users: int = 0
    chunks: int = 0
    with_baseline: int = 0

    def as_dict(self) -> dict[str, int | str]:
        return {"day": self.day, "users": self.users, "chunks": self.chunks, "with_baseline": self.with_baseline}


def _chunks(day: date, size: int) -> Iterator[list[int]]:
    """User ids with reports in ``day``'s window, ``size`` at a time (keyset pagination)."""
    first, last = window(day)
    users = DailyUsage.objects.filter(day__range=(first, last)).values_list("user_id", flat=True).distinct()
    after = 0
    while True:
        chunk = list(users.filter(user_id__gt=after).order_by("user_id")[:size])
        if not chunk:
            return
        yield chunk
        after = chunk[-1]


def recompute_chunk(user_ids: list[int], day: date, now: datetime) -> int:
    """Upsert the baselines of ``user_ids`` for ``day``; returns how many have one."""
    first, last = window(day)
    totals: dict[int, list[int]] = defaultdict(list)
    rows = DailyUsage.objects.filter(user_id__in=user_ids, day__range=(first, last)).values_list("user_id", "bytes")
    for user_id, amount in rows:
        totals[user_id].append(amount)
    baselines = []
    for user_id in user_ids:
        median, history = median_of(totals.get(user_id, []))
        baselines.append(UsageBaseline(user_id=user_id, day=day, median_bytes=median, history_days=history,
                                       computed_at=now))
    UsageBaseline.objects.bulk_create(
        baselines, update_conflicts=True, unique_fields=["user"],
        update_fields=["day", "median_bytes", "history_days", "computed_at"],
    )
    return sum(1 for b in baselines if b.median_bytes is not None)


def recompute_baselines(day: date, now: datetime, chunk_size: int | None = None) -> BaselineRun:
    """Recompute the baseline of ``day`` for every user with reports in its window."""
    run = BaselineRun(day=day.isoformat())
    for chunk in _chunks(day, chunk_size or risk_settings.BASELINE_CHUNK_SIZE):
        run.users += len(chunk)
        run.chunks += 1
        run.with_baseline += recompute_chunk(chunk, day, now)
    return run
