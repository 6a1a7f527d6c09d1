"""The database cache's ``incr`` (``core.database_cache``), the cache of a deployment without
Redis: concurrent increments each count (on PostgreSQL, threads; on SQLite, processes), the
counter keeps the expiry of its first increment, and a missing or expired key is Django's
``ValueError`` with nothing written. Django's own ``incr`` (read, add, ``set()``) lost
concurrent increments and reset the expiry to the default timeout."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection

from core.database_cache import DatabaseCache
from tests.concurrency import run_concurrently

ROOT = Path(__file__).resolve().parents[2]
TABLE = "vigil_test_counters"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "counters": {"BACKEND": "core.database_cache.DatabaseCache", "LOCATION": TABLE},
}


@pytest.fixture
def counters(settings: Any, transactional_db: Any) -> Iterator[DatabaseCache]:
    settings.CACHES = CACHES
    call_command("createcachetable", verbosity=0)
    cache = caches["counters"]
    assert isinstance(cache, DatabaseCache)
    yield cache
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {connection.ops.quote_name(TABLE)}")


def _rows() -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT cache_key, value, expires FROM {connection.ops.quote_name(TABLE)} ORDER BY cache_key")
        return list(cursor.fetchall())


def _expires() -> Any:
    [(_, _, expires)] = _rows()
    return expires


@pytest.mark.postgres
def test_concurrent_increments_each_count(counters: DatabaseCache) -> None:
    assert counters.add("burst", 0, 7200)
    counts = run_concurrently(16, lambda _: counters.incr("burst"))
    assert sorted(counts) == list(range(1, 17))  # no two read the same count
    assert counters.get("burst") == 16


def test_an_increment_keeps_the_expiry_of_the_first(counters: DatabaseCache) -> None:
    assert counters.add("streak", 1, 7200)
    first = _expires()
    assert [counters.incr("streak"), counters.incr("streak", 5), counters.decr("streak", 2)] == [2, 7, 5]
    assert _expires() == first  # Django's incr set() it to the default timeout (300 s) again
    assert counters.get("streak") == 5


def test_a_missing_or_expired_key_is_a_value_error_and_writes_nothing(counters: DatabaseCache) -> None:
    with pytest.raises(ValueError, match="not found"):
        counters.incr("never")
    assert _rows() == []
    counters.set("gone", 3, 60)
    with connection.cursor() as cursor:  # expired a second ago, not yet culled
        cursor.execute(f"UPDATE {connection.ops.quote_name(TABLE)} SET expires = %s",
                       [connection.ops.adapt_datetimefield_value(_past())])
    before = _rows()
    with pytest.raises(ValueError):
        counters.decr("gone")
    assert _rows() == before


def _past() -> Any:
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(seconds=1)


SQLITE_WORKER = """
import sys
import time
import django
from django.conf import settings
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1], "OPTIONS": {"timeout": 20}}},
    CACHES={"default": {"BACKEND": "core.database_cache.DatabaseCache", "LOCATION": "vigil_cache"}},
    USE_TZ=True,
)
django.setup()
from django.core.cache import cache
from django.core.management import call_command
if sys.argv[2] == "setup":
    call_command("createcachetable", verbosity=0)
    cache.add("burst", 0, 7200)
else:
    time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # all start together
    print(" ".join(str(cache.incr("burst")) for _ in range(int(sys.argv[2]))))
"""


def test_concurrent_increments_from_processes_each_count_on_sqlite(tmp_path: Path) -> None:
    """Several gunicorn workers on one SQLite file: one statement per increment, so no two
    writers deadlock holding read locks (SQLite would answer one "database is locked")."""
    database = str(tmp_path / "vigil.sqlite3")

    def run(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", SQLITE_WORKER, database, *args], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    setup = run("setup")
    assert setup.wait(60) == 0, setup.communicate()
    start = str(time.time() + 3)
    workers = [run("150", start) for _ in range(4)]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, outputs
    counts = sorted(int(n) for out, _ in outputs for n in out.split())
    assert counts == list(range(1, 601))
