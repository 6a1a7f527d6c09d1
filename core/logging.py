"""One JSON object per line, for every log line (docs/operations.md "Logs").

Security events already carry their fields (``extra={"event": {...}}``); any other record
becomes ``{"message": ..., "logger": ...}``, with its traceback as ``exc`` when it has one.
Inside a request every line also names the request (``request_id``, the ``X-Request-ID``
returned to the client) and, once a flow has decided something, the client and the outcome
(``core.request_context``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from . import request_context


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = getattr(record, "event", None)
        if not isinstance(payload, dict):
            payload = {"message": record.getMessage(), "logger": record.name}
        head: dict[str, Any] = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname}
        context = request_context.current()
        if context is not None:
            head["request_id"] = context.request_id
            if context.client_id:
                head["client_id"] = context.client_id
            if context.outcome:
                head["outcome"] = context.outcome
        if record.exc_info:
            head["exc"] = self.formatException(record.exc_info)
        return json.dumps({**head, **payload}, default=str, sort_keys=True)
