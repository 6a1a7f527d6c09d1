"""A real Celery worker on a Redis broker runs our periodic jobs against the shared database."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from core import keys
from core.models import KeyStatus, SigningKey

from .celery_support import celery_worker

pytestmark = [pytest.mark.celery, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]



@pytest.fixture
def worker():
    with celery_worker("vigil-test") as sender:
        yield sender


def test_worker_rotates_due_keys(worker):
    keys.ensure_keys()
    SigningKey.objects.filter(status=KeyStatus.ACTIVE).update(
        activates_at=dt.datetime.now(tz=dt.UTC) - dt.timedelta(days=40)
    )
    worker.send_task("idp.rotate_keys_if_due", queue="vigil-test")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if SigningKey.objects.filter(status=KeyStatus.NEXT).count() == 3:
            break
        time.sleep(0.5)
    assert SigningKey.objects.filter(status=KeyStatus.NEXT).count() == 3
