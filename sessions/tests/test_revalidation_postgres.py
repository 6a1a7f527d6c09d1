"""Revalidation at scale and under concurrency, on PostgreSQL.

* 100k seeded sessions (``INSERT ... SELECT generate_series``) revalidated within a memory
  bound (tracemalloc peak) and a time bound.
* Two workers on the same pages never handle a row twice (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction

from attestation.models import Device
from core.models import SecurityEvent
from sessions import revalidation
from sessions.models import DeviceSession, RefreshToken, SessionStatus
from tests.concurrency import run_concurrently

from .test_revalidation_helpers import make_app, make_client, make_user, seed_bulk

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=10)
pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def policy(settings: Any) -> None:
    settings.SESSIONS_ATTESTATION_MAX_AGE_SECONDS = 24 * 3600
    settings.SESSIONS_REATTESTATION_GRACE_SECONDS = 6 * 3600
    settings.SESSIONS_ATTESTATION_MAX_AGE_BY_CLIENT = {}
    settings.SESSIONS_REVALIDATION_BATCH_SIZE = 500


@pytest.fixture
def app_and_user() -> tuple[Any, Any]:
    return make_app(make_client()), make_user()


@pytest.mark.django_db
def test_100k_sessions_in_bounded_time_and_memory(app_and_user: tuple[Any, Any]) -> None:
    app, user = app_and_user
    fresh_at = NOW - timedelta(hours=1)
    seed_bulk(app, user, count=98_000, attested_at=fresh_at, tag="fresh")
    seed_bulk(app, user, count=1_000, attested_at=T0, tag="stale")  # to mark
    seed_bulk(app, user, count=1_000, attested_at=T0, flagged=True, tag="flagged")  # to revoke
    assert DeviceSession.objects.count() == 100_000

    tracemalloc.start()
    started = time.monotonic()
    try:
        result = revalidation.revalidate_devices(now=NOW)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    print(f"revalidated 100k sessions in {elapsed:.1f} s, peak {peak / 2**20:.1f} MiB")
    assert result.as_dict() == {"revoked_sessions": 1_000, "marked_devices": 1_000}
    assert peak < 50 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
    assert elapsed < 120, f"{elapsed:.1f} s"
    assert DeviceSession.objects.filter(status=SessionStatus.REVOKED, sid__startswith="sid-flagged-").count() == 1_000
    assert DeviceSession.objects.filter(status=SessionStatus.ACTIVE).count() == 99_000
    assert Device.objects.filter(requires_reattestation=True, key_id__startswith="stale-").count() == 1_000
    assert not Device.objects.filter(requires_reattestation=True, key_id__startswith="fresh-").exists()
    assert RefreshToken.objects.filter(revoked_at__isnull=False).count() == 1_000


@pytest.mark.django_db
def test_peak_memory_is_per_page_not_per_table(app_and_user: tuple[Any, Any]) -> None:
    """Scanning with nothing to do holds one page at a time: 10x the rows, not 10x the memory."""
    app, user = app_and_user
    peaks = []
    for tag, count in (("small", 2_000), ("large", 20_000)):
        seed_bulk(app, user, count=count, attested_at=NOW, tag=tag)
        tracemalloc.start()
        try:
            assert revalidation.revalidate_devices(now=NOW, batch_size=500).marked_devices == 0
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < peaks[0] * 2 + 1024 * 1024, peaks


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_handle_a_session_twice(app_and_user: tuple[Any, Any]) -> None:
    app, user = app_and_user
    seed_bulk(app, user, count=400, attested_at=T0, flagged=True, tag="flagged")
    seed_bulk(app, user, count=400, attested_at=T0, tag="stale")

    results = run_concurrently(2, lambda _: revalidation.revalidate_devices(now=NOW, batch_size=20), timeout=120)

    assert sum(r.revoked_sessions for r in results) == 400
    assert sum(r.marked_devices for r in results) == 400
    revoked_events = SecurityEvent.objects.filter(event_type="session.revoked", reason="attestation_stale")
    assert revoked_events.count() == 400
    assert revoked_events.values("session_id").distinct().count() == 400
    marked = SecurityEvent.objects.filter(event_type="attestation.device.reattestation_required")
    assert marked.count() == 400 and marked.values("details__device").distinct().count() == 400


@pytest.mark.django_db(transaction=True)
def test_rows_locked_by_another_worker_are_skipped_not_waited_for(app_and_user: tuple[Any, Any]) -> None:
    """Worker A holds the first page; worker B handles every other row and returns at once;
    A then finishes its page. Every session is revoked exactly once."""
    app, user = app_and_user
    seed_bulk(app, user, count=50, attested_at=T0, flagged=True, tag="flagged")
    candidates = revalidation.sessions_to_revoke(NOW)
    page = next(revalidation.pk_pages(candidates, 10))

    with transaction.atomic():
        held = revalidation.lock_page(candidates.select_related("client", "user"), page)
        assert len(held) == 10
        started = time.monotonic()
        (other,) = run_concurrently(1, lambda _: revalidation.revoke_stale_sessions(now=NOW, batch_size=10), timeout=120)
        assert other == 40 and time.monotonic() - started < 30
        for session in held:
            revalidation.revoke_session(session, revalidation.STALE_REASON, now=NOW)

    assert DeviceSession.objects.filter(status=SessionStatus.REVOKED).count() == 50
    assert SecurityEvent.objects.filter(event_type="session.revoked").count() == 50
    assert connection.in_atomic_block is False
