"""Celery tasks of the Shared Signals transmitter.

``deliver_security_event`` takes a delivery's primary key, re-fetches and locks it, and
pushes it once (``delivery.attempt``); transient failures raise so Celery retries with
exponential backoff and jitter. ``retry_undelivered`` is the periodic sweep (beat) for
deliveries whose task was lost or whose retries ran out.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import delivery


@shared_task(
    name="shared_signals.deliver_security_event",
    bind=True,
    autoretry_for=(delivery.DeliveryRetry,),
    retry_backoff=2,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
    acks_late=True,
)
def deliver_security_event(self: Any, delivery_pk: int, sweep: bool = False) -> str:
    """Push one SET. A sweep makes one attempt (the sweep itself is the retry loop)."""
    final = sweep or self.request.retries >= self.max_retries
    return delivery.attempt(delivery_pk, final=final)


@shared_task(name="shared_signals.deliver_pending_sets", acks_late=True)
def retry_undelivered(limit: int = 500) -> int:
    """Enqueue again what is due (see ``delivery.due_for_sweep``); returns how many."""
    due = delivery.due_for_sweep(limit=limit)
    for pk in due:
        deliver_security_event.apply_async((pk,), {"sweep": True})
    return len(due)


@shared_task(name="shared_signals.purge_old_sets_and_deliveries", acks_late=True)
def purge() -> dict[str, int]:
    """Daily clean-up of old received SETs and finished deliveries (``delivery.purge``)."""
    return delivery.purge()
