"""Request rates in Django REST framework's syntax (``"120/min"``), counted in fixed windows of
the shared cache.

The OAuth endpoints (plain Django views over Authlib) and the attestation challenge endpoint
(a DRF view, through its throttle class) read that syntax with ``parse`` and count with
``exceeded``: one atomic increment (``core.counters.incr_in_window``) per request, so requests
racing past the limit are each counted and exactly ``limit`` of them get through, where DRF's
own throttle history (read, then written back) lets a burst of parallel requests all pass.

A window is aligned on the clock (``moment // window``): its end, and so ``Retry-After``, is
the same for every request counted in it. The unattested refresh limit
(``sessions.flows.device_binding``) counts with ``exceeded`` too. A refused request counts
as well; it only fills a window that ends anyway. A cache that cannot be reached raises
(``core.cache.UNAVAILABLE``): a limit that cannot count refuses, as a 503 (docs/operations.md
"Outages").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from .counters import incr_in_window

#: DRF's periods: the first letter of ``s``/``sec``/``second``, ``m``/``min``, ``h``/``hour``, ``d``/``day``.
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` requests in each window of ``window`` seconds."""

    limit: int
    window: int

    def __str__(self) -> str:
        return f"{self.limit} per {self.window} s"


@lru_cache(maxsize=64)  # read on every counted request: each setting's text is parsed once
def parse(text: str) -> Rate:
    """``<requests>/<period>`` as DRF reads it (``SimpleRateThrottle.parse_rate``), at least one
    request; ``ValueError`` for anything else (system check ``vigil.E040``)."""
    number, _, period = (part.strip() for part in str(text).strip().partition("/"))
    unit = period[:1].lower()
    if not (number.isascii() and number.isdecimal()) or unit not in PERIODS:
        raise ValueError(f"{text!r} is not a rate like '60/min' (requests per s, min, hour or day)")
    if int(number) < 1:
        raise ValueError(f"{text!r} allows no request at all")
    return Rate(int(number), PERIODS[unit])


def exceeded(key: str, rate: Rate, now: datetime) -> int | None:
    """Count one request under ``key`` in the current window of ``rate``; the seconds until that
    window ends when the count is over the limit, else None."""
    moment = int(now.timestamp())
    count = incr_in_window(f"{key}:{moment // rate.window}", rate.window)
    if count <= rate.limit:
        return None
    return rate.window - moment % rate.window
