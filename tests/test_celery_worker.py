"""A real Celery worker on a Redis broker runs our periodic jobs against the shared database."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from idp import keys
from idp.models import KeyStatus, SigningKey

pytestmark = [pytest.mark.celery, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker(settings):
    broker = os.environ["REDIS_URL"]
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        CELERY_BROKER_URL=broker,
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        VIGIL_TESTING="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "idp", "worker", "--pool=solo", "--loglevel=WARNING",
         "-Q", "vigil-test", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    from celery import Celery

    sender = Celery("vigil-test-sender", broker=broker)
    try:
        yield sender
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_worker_rotates_due_keys(worker):
    keys.ensure_keys()
    SigningKey.objects.filter(status=KeyStatus.ACTIVE).update(
        activates_at=dt.datetime.now(tz=dt.timezone.utc) - dt.timedelta(days=40)
    )
    worker.send_task("idp.rotate_keys_if_due", queue="vigil-test")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if SigningKey.objects.filter(status=KeyStatus.NEXT).count() == 3:
            break
        time.sleep(0.5)
    assert SigningKey.objects.filter(status=KeyStatus.NEXT).count() == 3
