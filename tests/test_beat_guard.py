"""The beat lock (``vigil/beat_guard.py``): one holder at a time, freed when its holder
closes or dies; a standby that finds it taken sends nothing. The live proof with two real
beats is ``tests/test_multi_instance.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from vigil.beat_guard import ADVISORY_KEY, CHECK_EVERY, AdvisoryLock, BeatGuard, FileLock


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_file_lock_has_one_holder_and_is_freed_on_release(tmp_path: Path) -> None:
    first, second = BeatGuard(FileLock(tmp_path / "beat.lock")), BeatGuard(FileLock(tmp_path / "beat.lock"))
    assert first.may_send()
    assert not second.may_send()
    assert not second.may_send()
    first.release()
    assert second.may_send()
    assert not first.may_send()


def test_a_file_lock_is_freed_when_its_process_dies(tmp_path: Path) -> None:
    path = tmp_path / "beat.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'ab'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(60)"), str(path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        assert not BeatGuard(FileLock(path)).may_send()
    finally:
        holder.kill()
        holder.wait(10)
    assert BeatGuard(FileLock(path)).may_send()


def test_the_standby_says_so_once(tmp_path: Path, caplog: Any) -> None:
    holder = BeatGuard(FileLock(tmp_path / "beat.lock"))
    assert holder.may_send()
    standby = BeatGuard(FileLock(tmp_path / "beat.lock"))
    with caplog.at_level("WARNING", logger="vigil.beat"):
        for _ in range(3):
            assert not standby.may_send()
    assert len([r for r in caplog.records if "standing by" in r.getMessage()]) == 1
    holder.release()


class Broken:
    """A lock whose holder's connection broke."""

    def __init__(self) -> None:
        self.checks = 0

    def acquire(self) -> bool:
        return True

    def alive(self) -> bool:
        self.checks += 1
        return False

    def release(self) -> None:
        pass


def test_a_holder_checks_its_lock_at_most_once_a_second_and_stops_when_it_broke() -> None:
    lock, clock = Broken(), Clock()
    guard = BeatGuard(lock, clock=clock)
    assert guard.may_send()
    clock.now += CHECK_EVERY / 2
    assert guard.may_send() and lock.checks == 0
    clock.now += CHECK_EVERY
    assert not guard.may_send()
    assert lock.checks == 1 and not guard.holding


class Unreachable(Broken):
    """A database that cannot be reached."""

    def acquire(self) -> bool:
        raise ConnectionError("database unreachable")


def test_a_database_that_cannot_be_reached_means_standing_by_not_crashing(caplog: Any) -> None:
    guard = BeatGuard(Unreachable())
    with caplog.at_level("WARNING", logger="vigil.beat"):
        assert not guard.may_send()
    assert "could not ask for the beat lock" in caplog.text


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_advisory_lock_has_one_holder_and_goes_with_its_connection() -> None:
    assert connection.vendor == "postgresql"
    first, second = AdvisoryLock(), AdvisoryLock()
    assert first.acquire()
    assert not second.acquire()
    assert first.alive()
    with connection.cursor() as cursor:  # the holder's session, seen from another one
        key = ADVISORY_KEY & 0xFFFF_FFFF_FFFF_FFFF
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s "
                       "AND objid = %s AND objsubid = 1", [str(key >> 32), str(key & 0xFFFF_FFFF)])
        assert cursor.fetchone()[0] == 1
    first.conn.close()  # the connection is gone (a beat that died): so is the lock
    assert not first.alive()
    assert second.acquire()
    second.release()
