"""Security events: every security decision is recorded once, here.

``record()`` appends a ``SecurityEvent`` row and writes the same data as one JSON
line on the ``vigil.security`` logger. Flows call it; views never write events.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Iterator

from django.db import connection, transaction
from django.db.models.signals import post_save
from django.http import HttpRequest

from . import sql
from .models import SecurityEvent

logger = logging.getLogger("vigil.security")


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address: the peer, or behind trusted proxies the address they forwarded
    (``idp/client_address.py``, ``VIGIL_TRUSTED_PROXIES``)."""
    if request is None:
        return None
    from .client_address import client_address

    return client_address(request)


def _clean(value: Any) -> Any:
    """JSON-safe and storable everywhere: no NUL characters, long strings cut."""
    if isinstance(value, str):
        return value.replace("\x00", "\\0")[:2000]
    if isinstance(value, dict):
        return {str(k).replace("\x00", ""): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _clean(str(value))


def record(
    event_type: str,
    *,
    outcome: str = "success",
    reason: str = "",
    user: Any = None,
    client_id: str = "",
    session_id: str = "",
    request: HttpRequest | None = None,
    ip_address: str | None = None,
    **details: Any,
) -> SecurityEvent:
    user_obj = user if getattr(user, "pk", None) else None
    details = _clean(details)
    event = SecurityEvent(
        event_type=event_type,
        outcome=outcome,
        reason=_clean(reason)[:80],
        user=user_obj,
        client_id=_clean(client_id or "")[:100],
        session_id=_clean(session_id or "")[:64],
        ip_address=ip_address or client_ip(request),
        details=details,
    )
    batch = _batch.get()
    if batch is not None and len(connection.atomic_blocks) == batch.depth:
        batch.events.append(event)  # outside any transaction of its own: written when the batch ends
        return event
    event.save()
    # The log line follows the row: written once the row is committed, never for a rollback.
    transaction.on_commit(lambda: _log(event))
    return event


def _log(event: SecurityEvent) -> None:
    user = event.user
    line = {
        "event": event.event_type,
        "outcome": event.outcome,
        "reason": event.reason,
        "user": str(user.get_user_id()) if user is not None else None,
        "client_id": event.client_id or None,
        "session_id": event.session_id or None,
        "ip": event.ip_address,
        "details": event.details,
        "id": event.pk,
    }
    logger.info(event.event_type, extra={"event": line})


@dataclass
class _Batch:
    depth: int
    events: list[SecurityEvent] = field(default_factory=list)


_batch: ContextVar[_Batch | None] = ContextVar("vigil_event_batch", default=None)


@contextmanager
def batched() -> Iterator[None]:
    """Write the events recorded in this block together, in one INSERT when it ends (a token
    request records two or three). Only events recorded outside any transaction opened inside
    the block wait: those are final when recorded; an event inside a transaction is written
    with it, as always, so a rollback still takes it away. The batch is written however the
    block ends, errors included."""
    batch = _Batch(depth=len(connection.atomic_blocks))
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
        if batch.events:
            sql.insert(batch.events)
            for event in batch.events:
                # What save() would have announced (shared signals hook session revocations).
                post_save.send(sender=SecurityEvent, instance=event, created=True, update_fields=None, raw=False,
                               using=event._state.db)
                transaction.on_commit(lambda event=event: _log(event))
