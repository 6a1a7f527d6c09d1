"""What the current request is, for log lines and security events (docs/operations.md "Logs").

``ops.middleware`` opens a ``RequestContext`` for each request: its id (``X-Request-ID``)
and, once a flow records a security event, the client and outcome that event names. Every
security event stores the id (``SecurityEvent.request_id``) and every JSON log line carries
it, so an event, its log line and the response the client saw are tied together.

Outside a request (Celery, management commands) there is no context and nothing is added.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class RequestContext:
    request_id: str
    client_id: str = ""
    event: str = ""
    outcome: str = ""
    reason: str = ""


_current: ContextVar[RequestContext | None] = ContextVar("vigil_request_context", default=None)


def current() -> RequestContext | None:
    return _current.get()


def current_id() -> str:
    """The current request's id, or ``""`` outside a request."""
    context = _current.get()
    return context.request_id if context is not None else ""


@contextmanager
def opened(request_id: str) -> Iterator[RequestContext]:
    """The context of one request, closed however the request ends."""
    context = RequestContext(request_id)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def note_decision(event: str, outcome: str, reason: str, client_id: str) -> None:
    """Remember the latest security decision of the request (its log line names it)."""
    context = _current.get()
    if context is None:
        return
    context.event, context.outcome, context.reason = event, outcome, reason
    if client_id:
        context.client_id = client_id
