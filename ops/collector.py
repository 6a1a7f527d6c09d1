"""Metrics computed when Prometheus scrapes, from shared state: signing-key age and time to
the next rotation, each periodic task's last success, the SSF delivery backlog.

They are read at scrape time (a few small queries) rather than kept as gauges in each
process, so every web process reports the same values and nothing is left behind when a
process dies. A part that cannot be read (the database is down) is left out of the scrape
and ``vigil_metrics_collect_ok{part}`` says so; the rest is still served.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.app_settings import app_settings as idp_settings
from core.models import KeyStatus, SigningKey
from shared_signals.models import DeliveryStatus, SetDelivery

from . import periodic

logger = logging.getLogger(__name__)
Part = Callable[[], list[GaugeMetricFamily]]


def signing_keys() -> list[GaugeMetricFamily]:
    now = timezone.now()
    age = GaugeMetricFamily(
        "vigil_signing_key_age_seconds", "Seconds the active signing key has signed, per algorithm.", labels=["alg"]
    )
    due = GaugeMetricFamily(
        "vigil_signing_key_next_rotation_seconds",
        "Seconds until the next key starts signing (a waiting key's activation, else the active key's "
        "IDP_KEY_ROTATION_DAYS); negative when rotation is overdue.", labels=["alg"])
    rows = SigningKey.objects.filter(status__in=[KeyStatus.ACTIVE, KeyStatus.NEXT]).order_by("activates_at")
    active = {k.alg: k for k in rows if k.status == KeyStatus.ACTIVE}
    waiting = {k.alg: k for k in rows if k.status == KeyStatus.NEXT}
    for alg, key in sorted(active.items()):
        age.add_metric([alg], (now - key.activates_at).total_seconds())
        successor = waiting.get(alg)
        moment = successor.activates_at if successor else key.activates_at + timedelta(
            days=idp_settings.KEY_ROTATION_DAYS)
        due.add_metric([alg], (moment - now).total_seconds())
    return [age, due]


def periodic_tasks() -> list[GaugeMetricFamily]:
    now = time.time()
    last = GaugeMetricFamily("vigil_celery_periodic_last_success_timestamp_seconds",
                             "When each periodic task last succeeded (Unix time).", labels=["task"])
    age = GaugeMetricFamily("vigil_celery_periodic_last_success_age_seconds",
                            "Seconds since each periodic task last succeeded.", labels=["task"])
    interval = GaugeMetricFamily("vigil_celery_periodic_interval_seconds",
                                 "Each periodic task's beat interval.", labels=["task"])
    for state in periodic.scheduled():
        if state.interval_seconds is not None:
            interval.add_metric([state.task], state.interval_seconds)
        if state.last_success is not None:
            last.add_metric([state.task], state.last_success)
            age.add_metric([state.task], max(0.0, now - state.last_success))
    return [last, age, interval]


def ssf_backlog() -> list[GaugeMetricFamily]:
    pending = SetDelivery.objects.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED])
    summary = pending.aggregate(n=Count("pk"), oldest=Min("created_at"))
    count = GaugeMetricFamily("vigil_ssf_undelivered", "Security Event Tokens not yet delivered (pending or failed).")
    count.add_metric([], summary["n"] or 0)
    oldest = GaugeMetricFamily("vigil_ssf_oldest_undelivered_age_seconds",
                               "Age of the oldest undelivered Security Event Token (0 when none).")
    moment = summary["oldest"]
    oldest.add_metric([], (timezone.now() - moment).total_seconds() if moment else 0.0)
    return [count, oldest]


PARTS: dict[str, Part] = {"signing_keys": signing_keys, "periodic_tasks": periodic_tasks, "ssf": ssf_backlog}


class SharedStateCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        ok = GaugeMetricFamily("vigil_metrics_collect_ok", "1 when this part of the scrape could be read.",
                               labels=["part"])
        for name, part in PARTS.items():
            try:
                families = part()
            except Exception as exc:
                logger.warning("metrics: %s not collected (%s)", name, type(exc).__name__)
                ok.add_metric([name], 0)
                continue
            ok.add_metric([name], 1)
            yield from families
        yield ok
