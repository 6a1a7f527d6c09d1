"""What a request did outside the database's transaction, to take back if it is answered with
an outage's 503 (``core.outage``): a count in the shared cache (``core.rates``), which no
rollback reaches. Apart from ``core.outage`` so that counting imports nothing heavier."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

logger = logging.getLogger("vigil.outage")

_undo: ContextVar[list[Callable[[], None]] | None] = ContextVar("vigil_outage_undo", default=None)


def undo_on_outage(action: Callable[[], None]) -> None:
    """Run ``action`` if this request is answered with an outage's 503. Outside a request
    (Celery, commands), nothing."""
    pending = _undo.get()
    if pending is not None:
        pending.append(action)


@contextmanager
def collecting() -> Iterator[None]:
    """One request's actions (``OutageMiddleware``), forgotten when it ends."""
    token = _undo.set([])
    try:
        yield
    finally:
        _undo.reset(token)


def undo_all() -> None:
    """The request failed in an outage: take back what it asked, last first."""
    pending = _undo.get() or []
    while pending:
        try:
            pending.pop()()
        except Exception:  # the store is down: nothing to take back from it either
            logger.info("could not undo a count after an outage", exc_info=True)
