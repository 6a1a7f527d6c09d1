"""One JSON object per line for security events, so log pipelines can parse them."""

from __future__ import annotations

import json
import logging


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = getattr(record, "event", None)
        if not isinstance(payload, dict):
            payload = {"message": record.getMessage()}
        payload = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname, **payload}
        return json.dumps(payload, default=str, sort_keys=True)
