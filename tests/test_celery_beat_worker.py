"""Real Celery processes on Redis run the revalidation against the PostgreSQL test database.

* Beat (django-celery-beat ``DatabaseScheduler``) sends ``sessions.revalidate_device_attestations`` from a
  one-second ``PeriodicTask`` row in the test database; a worker runs it: a stale device is
  marked, a session past its grace period is revoked.
* A worker SIGKILLed in the middle of a page leaves nothing half-done (the page's transaction
  rolls back); ``acks_late`` makes Redis redeliver the message to the next worker, which
  finishes: every session revoked exactly once.

Processes are started with their PIDs kept, stopped with SIGTERM to those PIDs, and every
wait is bounded. Each test uses its own queue so nothing else on the broker interferes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from attestation.models import Device
from core.models import SecurityEvent
from sessions.models import DeviceSession, RefreshToken, SessionStatus
from sessions.tests.test_revalidation_helpers import make_app, make_client, make_device, make_session, make_user
from tests.celery_support import worker_database_url

pytestmark = [pytest.mark.celery, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
# Start the Celery CLI on our app with broker options for the test: a short visibility
# timeout so Redis hands an unacknowledged message to the next worker within seconds.
BOOT = """
import sys
from vigil.celery import app
app.conf.broker_transport_options = {
    "visibility_timeout": 4, "unacked_restore_interval": 1, "unacked_restore_throttle": 1,
}
app.start(sys.argv[1:])
"""


class Processes:
    """Celery subprocesses of one test: started with PIDs kept, stopped by SIGTERM."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs = env, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-c", BOOT, *args], cwd=ROOT, env=self.env,
                                stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        return proc

    def worker(self, name: str, queue: str) -> subprocess.Popen[bytes]:
        return self.start(name, "worker", "--pool=solo", "--loglevel=INFO", "-Q", queue, "-n", f"{name}@%h",
                          "--without-heartbeat", "--without-gossip", "--without-mingle")

    def beat(self) -> subprocess.Popen[bytes]:
        return self.start("beat", "beat", "--loglevel=INFO", "--max-interval=1",
                          f"--pidfile={self.logs / 'beat.pid'}", f"--schedule={self.logs / 'beat-schedule'}")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def output(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.logs.glob("*.log")))


@pytest.fixture
def queue() -> str:
    return f"vigil-reval-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    env = dict(os.environ)
    env.update(
        CELERY_BROKER_URL=os.environ["REDIS_URL"],
        DATABASE_URL=worker_database_url(),
        DATABASE_CONN_MAX_AGE="0",
        VIGIL_TESTING="1",
        SESSIONS_ATTESTATION_MAX_AGE_SECONDS="86400",
        SESSIONS_REATTESTATION_GRACE_SECONDS="3600",
    )
    processes = Processes(env, tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture
def sender() -> Iterator[Any]:
    from celery import Celery

    app = Celery("vigil-reval-test-sender", broker=os.environ["REDIS_URL"], set_as_current=False)
    try:
        yield app
    finally:
        app.close()


def wait_for(condition: Callable[[], Any], procs: Processes, timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what or condition}\n{procs.output()}")


@pytest.fixture
def world(settings: Any) -> dict[str, Any]:
    settings.SESSIONS_ATTESTATION_MAX_AGE_SECONDS = 86400
    settings.SESSIONS_REATTESTATION_GRACE_SECONDS = 3600
    client = make_client()
    return {"client": client, "user": make_user(), "app": make_app(client), "long_ago": timezone.now() - timedelta(days=5)}


def _stale_session(world: dict[str, Any], *, flagged: bool, attested_at: Any = None) -> DeviceSession:
    attested_at = attested_at or world["long_ago"]
    device = make_device(world["app"], attested_at=attested_at, flagged=flagged)
    return make_session(world["user"], world["client"], device, attested_at)


def test_beat_schedules_revalidation_and_the_worker_runs_it(
    world: dict[str, Any], procs: Processes, queue: str
) -> None:
    to_revoke = _stale_session(world, flagged=True)
    # Stale (max age 24 h) but inside the grace period (1 h): marked, not revoked.
    to_mark = _stale_session(world, flagged=False, attested_at=timezone.now() - timedelta(hours=24, minutes=30))
    fresh = make_session(world["user"], world["client"], make_device(world["app"], attested_at=timezone.now()),
                         timezone.now())
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name=f"test revalidation {queue}", task="sessions.revalidate_device_attestations",
                                interval=every_second, queue=queue, kwargs='{"batch_size": 10}')

    procs.worker("worker", queue)
    procs.beat()

    wait_for(lambda: DeviceSession.objects.filter(pk=to_revoke.pk, status=SessionStatus.REVOKED).exists(), procs,
             what="the flagged session to be revoked")
    assert to_mark.device_id is not None
    device_id = to_mark.device_id
    wait_for(lambda: Device.objects.filter(pk=device_id, requires_reattestation=True).exists(), procs,
             what="the stale device to be marked")
    # Beat keeps sending (its run counts reach the table only every few minutes: read the log).
    wait_for(lambda: procs.log("worker").count("sessions.revalidate_device_attestations[") >= 6, procs,
             what="the worker to run beat's entry three times")
    procs.stop_all()

    installed = PeriodicTask.objects.get(name="revalidate-device-attestations")  # from vigil/schedule.py
    assert (installed.task, installed.interval.every, installed.interval.period) == (
        "sessions.revalidate_device_attestations", 900, IntervalSchedule.SECONDS,
    )
    assert DeviceSession.objects.get(pk=to_revoke.pk).status_reason == "attestation_stale"
    assert DeviceSession.objects.get(pk=fresh.pk).status == SessionStatus.ACTIVE
    assert DeviceSession.objects.get(pk=to_mark.pk).status == SessionStatus.ACTIVE
    # Idempotent across beat's repeated runs: one event per session and per device.
    assert SecurityEvent.objects.filter(event_type="session.revoked").count() == 1
    assert SecurityEvent.objects.filter(event_type="attestation.device.reattestation_required").count() == 1


# --------------------------------------------------------------------------- killed mid-page
def _raw_connection(autocommit: bool = False) -> psycopg.Connection[Any]:
    db = connection.settings_dict
    return psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                           password=db.get("PASSWORD") or None, dbname=db["NAME"], autocommit=autocommit)


def _blocked_backend(monitor: psycopg.Connection[Any]) -> int | None:
    """The PID of a backend of the test database waiting for a row lock (our held lock)."""
    row = monitor.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid()"
    ).fetchone()
    return row[0] if row else None


def _assert_whole(sessions: list[DeviceSession]) -> int:
    """Every session is either revoked completely (session, every token, one event) or untouched.
    Returns how many are revoked."""
    revoked = 0
    for session in sessions:
        session.refresh_from_db()
        live_tokens = RefreshToken.objects.filter(session=session, revoked_at__isnull=True).count()
        events = SecurityEvent.objects.filter(event_type="session.revoked", session_id=session.sid).count()
        if session.status == SessionStatus.REVOKED:
            assert (live_tokens, events) == (0, 1), session.sid
            revoked += 1
        else:
            assert (session.status, live_tokens, events) == (SessionStatus.ACTIVE, 1, 0), session.sid
    return revoked


def test_worker_killed_mid_page_leaves_nothing_half_done(
    world: dict[str, Any], procs: Processes, queue: str, sender: Any
) -> None:
    sessions = sorted((_stale_session(world, flagged=True) for _ in range(20)), key=lambda s: s.pk)
    # Hold a row lock the worker needs in the middle of its second page (sessions 5-9):
    # it revokes sessions 5 and 6 inside the page's transaction, then waits on session 7.
    raw, monitor = _raw_connection(), _raw_connection(autocommit=True)  # pg_stat_activity: a fresh view per query
    raw.execute("SELECT id FROM sessions_refresh_token WHERE session_id = %s FOR UPDATE", [sessions[7].pk])
    try:
        first = procs.worker("worker-1", queue)
        sent = sender.send_task("sessions.revalidate_device_attestations", kwargs={"batch_size": 5}, queue=queue)
        backend = wait_for(lambda: _blocked_backend(monitor), procs, what="the worker to block mid-page")
        assert _assert_whole(sessions) == 5  # page one committed; page two's work is not visible

        first.send_signal(signal.SIGKILL)
        first.wait(10)
        raw.rollback()  # release the lock: the orphaned backend finds its client gone and rolls back
        wait_for(lambda: not monitor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend]).fetchone(),
                 procs, what="the killed worker's transaction to end")
    finally:
        raw.close()
        monitor.close()
    assert _assert_whole(sessions) == 5

    procs.worker("worker-2", queue)  # Redis redelivers the unacknowledged message (acks_late)
    wait_for(lambda: not DeviceSession.objects.filter(status=SessionStatus.ACTIVE).exists(), procs, timeout=90,
             what="the redelivered task to finish")
    assert _assert_whole(sessions) == 20
    assert SecurityEvent.objects.filter(event_type="session.revoked").count() == 20
    assert f"sessions.revalidate_device_attestations[{sent.id}] received" in procs.log("worker-2")  # the same message
