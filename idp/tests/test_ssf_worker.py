"""A real Celery worker on Redis pushes our SET to a loopback receiver that verifies it
against our live JWKS; the receiver's first answer is a 500, the retry (exponential
backoff) is delivered, once."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.utils import timezone

from core import keys
from idp.tests.test_ssf_transmitter import jwks_verifier
from sessions.flows.tokens import revoke_session
from sessions.models import DeviceSession
from shared_signals import transmitter
from shared_signals.models import DeliveryStatus, SetDelivery, SsfReceiver
from shared_signals.testing import LoopbackReceiver
from tests.celery_support import celery_worker

#: The receivers are on 127.0.0.1, which core.outbound refuses unless told otherwise.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("allow_private_outbound")]

QUEUE = "vigil-ssf-test"


@pytest.fixture
def worker(allow_private_outbound: None) -> Any:
    """The worker posts to a receiver on 127.0.0.1: it is started with private addresses allowed."""
    with celery_worker(QUEUE) as sender:
        yield sender


@pytest.mark.celery
def test_worker_retries_and_delivers_once(worker: Any, live_server: Any, user: Any, mobile_client: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    keys.ensure_keys()
    monkeypatch.setattr(
        transmitter, "enqueue",
        lambda pk: worker.send_task("shared_signals.deliver_security_event", args=[pk], queue=QUEUE),
    )
    session = DeviceSession.objects.create(sid="worker-sid", user=user, client=mobile_client.client,
                                           auth_time=timezone.now(), amr=["pwd"])
    with LoopbackReceiver(statuses=[500, 202], verify=jwks_verifier(f"{live_server.url}/jwks.json")) as rp:
        SsfReceiver.objects.create(name="RP", audience="https://rp.example.com/caep", endpoint_url=rp.endpoint)
        revoke_session(session, "revoked_by_admin")  # commits: on_commit hands the delivery to the worker
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if SetDelivery.objects.filter(status=DeliveryStatus.DELIVERED).exists():
                break
            time.sleep(0.5)
        time.sleep(1)
        pushes = list(rp.pushes)
    row = SetDelivery.objects.get()
    assert (row.status, row.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert [p.status for p in pushes] == [500, 202]
    assert pushes[1].claims is not None and pushes[1].claims["jti"] == row.jti


def _in_thread(fn: Any) -> Any:
    """``fn()`` on a connection of its own (another worker)."""
    from tests.concurrency import run_concurrently

    return run_concurrently(1, lambda _: fn())[0]


def test_a_locked_delivery_is_skipped_and_other_deliveries_of_the_receiver_go_on(
    user: Any, mobile_client: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.db import transaction

    from shared_signals import delivery

    keys.ensure_keys()
    monkeypatch.setattr(transmitter, "enqueue", lambda pk: None)
    session = DeviceSession.objects.create(sid="lock-sid", user=user, client=mobile_client.client,
                                           auth_time=timezone.now(), amr=["pwd"])
    with LoopbackReceiver(statuses=[202]) as rp:
        SsfReceiver.objects.create(name="RP", audience="https://rp.example.com/caep", endpoint_url=rp.endpoint)
        first, second = (transmitter.emit_session_revoked(session)[0] for _ in range(2))
        with transaction.atomic():
            SetDelivery.objects.select_for_update().get(pk=first.pk)  # another worker is pushing it
            assert _in_thread(lambda: delivery.attempt(first.pk, final=False)) == "locked_or_gone"
            assert _in_thread(lambda: delivery.attempt(second.pk, final=False)) == "delivered"
        assert len(rp.pushes) == 1
