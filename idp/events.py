"""Security events: every security decision is recorded once, here.

``record()`` appends a ``SecurityEvent`` row and writes the same data as one JSON
line on the ``vigil.security`` logger. Flows call it; views never write events.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from .models import SecurityEvent

logger = logging.getLogger("vigil.security")


def client_ip(request: HttpRequest | None) -> str | None:
    """The peer address. Proxies' X-Forwarded-For is trusted only when configured."""
    if request is None:
        return None
    from django.conf import settings

    if getattr(settings, "VIGIL_TRUST_X_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


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
    event = SecurityEvent.objects.create(
        event_type=event_type,
        outcome=outcome,
        reason=_clean(reason)[:80],
        user=user_obj,
        client_id=_clean(client_id or "")[:100],
        session_id=_clean(session_id or "")[:64],
        ip_address=ip_address or client_ip(request),
        details=details,
    )
    line = {
        "event": event_type,
        "outcome": outcome,
        "reason": event.reason,
        "user": str(user_obj.get_user_id()) if user_obj is not None else None,
        "client_id": event.client_id or None,
        "session_id": event.session_id or None,
        "ip": event.ip_address,
        "details": details,
        "id": event.pk,
    }
    # The log line follows the row: written once the row is committed, never for a rollback.
    transaction.on_commit(lambda: logger.info(event_type, extra={"event": line}))
    return event
