"""Real Celery workers for tests: a subprocess on the Redis broker (``REDIS_URL``) using the
test database, and a sender app for that broker. Tests that use it are marked ``celery``
and ``postgres`` (the worker must see the test's committed rows)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from celery import Celery
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def worker_database_url() -> str:
    """The URL of the database this test runs against (pytest-django's ``test_*`` database)."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else "")
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def celery_worker(queue: str) -> Iterator[Celery]:
    """Start a solo-pool worker consuming ``queue``; yield a sender; stop it with SIGTERM."""
    broker = os.environ["REDIS_URL"]
    env = {**os.environ, "CELERY_BROKER_URL": broker, "DATABASE_URL": worker_database_url(), "VIGIL_TESTING": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "vigil", "worker", "--pool=solo", "--loglevel=WARNING",
         "-Q", queue, "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield Celery(f"{queue}-sender", broker=broker, set_as_current=False)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def eager_tasks() -> Iterator[None]:
    """Tasks queued in this block run in this process, whichever Celery app is current: our
    tasks are ``shared_task``s, sent through ``celery.current_app``, which an earlier test may
    have set to another app than ``vigil.celery.app``."""
    from celery._state import get_current_app

    from vigil.celery import app

    apps = {id(a): a for a in (app, get_current_app())}.values()
    before = [(a, a.conf.task_always_eager) for a in apps]
    for a, _ in before:
        a.conf.task_always_eager = True
    try:
        yield
    finally:
        for a, value in before:
            a.conf.task_always_eager = value
