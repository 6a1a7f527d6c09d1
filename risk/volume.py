"""Data-volume anomaly from relying services' usage reports (docs/risk.md).

Each report adds its bytes to the user's total of one UTC day (the day its period ends).
The baseline of day D is the median of the user's daily totals over the
``SESSIONS_RISK_VOLUME_BASELINE_DAYS`` (14) days before D, days without a report counting
as zero, and exists only once at least ``SESSIONS_RISK_VOLUME_MIN_HISTORY_DAYS`` of them
have reports. A day is anomalous when its total exceeds ``SESSIONS_RISK_VOLUME_FACTOR``
(10) times the baseline and ``SESSIONS_RISK_VOLUME_FLOOR_BYTES``; it is signalled once.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from .models import DailyUsage, RiskSignal, UsageBaseline, UsageReport
from .settings import risk_settings
from .signals import Signal


def usage_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def window(day: date) -> tuple[date, date]:
    """First and last day of the baseline window of ``day`` (the days before it)."""
    return day - timedelta(days=risk_settings.VOLUME_BASELINE_DAYS), day - timedelta(days=1)


def median_of(daily: Iterable[int]) -> tuple[int | None, int]:
    """``(median, history_days)`` of one user's window, zeros filling days without reports."""
    values = list(daily)
    history = len(values)
    if history < risk_settings.VOLUME_MIN_HISTORY_DAYS:
        return None, history
    values += [0] * max(0, risk_settings.VOLUME_BASELINE_DAYS - history)
    return int(statistics.median(values)), history


def compute_baseline(user_id: int, day: date) -> tuple[int | None, int]:
    first, last = window(day)
    rows = DailyUsage.objects.filter(user_id=user_id, day__range=(first, last)).values_list("bytes", flat=True)
    return median_of(rows)


def baseline_for(user_id: int, day: date, now: datetime) -> tuple[int | None, int]:
    """The stored baseline of ``day``, computed (and stored) when missing or for another day."""
    stored = UsageBaseline.objects.filter(user_id=user_id, day=day).first()
    if stored is not None:
        return stored.median_bytes, stored.history_days
    median, history = compute_baseline(user_id, day)
    UsageBaseline.objects.update_or_create(
        user_id=user_id, defaults={"day": day, "median_bytes": median, "history_days": history, "computed_at": now}
    )
    return median, history


@dataclass
class Recorded:
    report: UsageReport
    duplicate: bool
    day: date
    day_total: int


def record_report(*, client: Any, user: Any, session: Any, amount: int, start: datetime, end: datetime,
                  report_id: str, now: datetime) -> Recorded:
    """Store a report and add it to the day's total; a repeated ``report_id`` counts once."""
    day = usage_day(end)
    if report_id:
        earlier = UsageReport.objects.filter(client=client, report_id=report_id).first()
        if earlier is not None:
            day = usage_day(earlier.period_end)
            return Recorded(earlier, True, day, _total(earlier.user_id, day))
    try:
        with transaction.atomic():
            report = UsageReport.objects.create(client=client, user=user, session=session, report_id=report_id,
                                                bytes=amount, period_start=start, period_end=end, received_at=now)
    except IntegrityError:  # the same report_id raced in
        earlier = UsageReport.objects.get(client=client, report_id=report_id)
        day = usage_day(earlier.period_end)
        return Recorded(earlier, True, day, _total(earlier.user_id, day))
    DailyUsage.objects.get_or_create(user=user, day=day)
    DailyUsage.objects.filter(user=user, day=day).update(bytes=F("bytes") + amount)
    return Recorded(report, False, day, _total(user.pk, day))


def _total(user_id: int, day: date) -> int:
    return DailyUsage.objects.filter(user_id=user_id, day=day).values_list("bytes", flat=True).first() or 0


def anomaly_signal(user_id: int, day: date, total: int, now: datetime) -> Signal | None:
    """The volume signal for ``day``, at most once per user and day."""
    median, history = baseline_for(user_id, day, now)
    if median is None:
        return None
    threshold = max(risk_settings.VOLUME_FACTOR * median, float(risk_settings.VOLUME_FLOOR_BYTES))
    if total <= threshold:
        return None
    first_time = DailyUsage.objects.filter(user_id=user_id, day=day, anomaly_at__isnull=True).update(anomaly_at=now)
    if not first_time:
        return None
    return Signal(RiskSignal.VOLUME_ANOMALY, {
        "day": day.isoformat(), "day_bytes": total, "baseline_bytes": median, "history_days": history,
        "factor": risk_settings.VOLUME_FACTOR, "floor_bytes": risk_settings.VOLUME_FLOOR_BYTES,
        "ratio": None if median == 0 else round(total / median, 2),
    })
