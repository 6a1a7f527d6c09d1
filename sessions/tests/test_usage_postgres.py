"""Races on PostgreSQL: concurrent usage reports all count, a retried report counts once,
and a day that crosses the threshold under concurrency is signalled once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from core.models import SecurityEvent
from risk.models import DailyUsage, RiskPolicy, UsageReport
from tests.concurrency import run_concurrently

from .test_usage import MIB, NOW, TODAY, active_session, post_usage, report, seed_history

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_reports_count_exactly_and_fire_once(service_client, user, mobile_client, time_machine):
    assert connection.vendor == "postgresql"
    time_machine.move_to(NOW, tick=False)
    RiskPolicy.objects.create(client=service_client.client, accepts_usage_reports=True)
    active_session(user, mobile_client.client)
    seed_history(user, [10 * MIB] * 14)
    sub = user.get_user_id()

    # 16 reports of 20 MiB (4 of them sent twice): 320 MiB crosses 10 x 10 MiB and the floor.
    responses = run_concurrently(20, lambda i: post_usage(service_client, report(sub, 20 * MIB, report_id=f"r-{i % 16}")))

    assert sorted(r.status_code for r in responses) == [202] * 20
    assert sum(r.json()["duplicate"] for r in responses) == 4
    assert UsageReport.objects.count() == 16
    assert DailyUsage.objects.get(user=user, day=TODAY).bytes == 320 * MIB
    assert SecurityEvent.objects.filter(event_type="risk.signal", reason="volume_anomaly").count() == 1
    assert SecurityEvent.objects.filter(event_type="risk.action", reason="step_up").count() == 1
    anomaly_at = DailyUsage.objects.get(user=user, day=TODAY).anomaly_at
    assert anomaly_at is not None and NOW - timedelta(days=1) < anomaly_at <= NOW
