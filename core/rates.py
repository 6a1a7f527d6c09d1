"""Request rates in Django REST framework's syntax (``"120/min"``), counted in sliding windows
of the shared cache.

The OAuth endpoints (plain Django views over Authlib) and the attestation challenge endpoint
(a DRF view, through its throttle class) read that syntax with ``parse`` and count with
``exceeded``: one atomic increment (``core.counters.incr_in_window``) per request, so requests
racing past the limit are each counted and exactly ``limit`` of them get through, where DRF's
own throttle history (read, then written back) lets a burst of parallel requests all pass.

The window slides (the "sliding window counter" of Cloudflare's rate limiting and of the
``limits`` library): requests are counted in clock-aligned windows (``moment // window``), and a
request is measured against its own window's count plus the previous window's, weighted by the
share of that window still inside the last ``window`` seconds. A fixed window alone let up to
twice the limit through in a burst straddling two windows; this lets at most the limit through
in any ``window`` seconds, assuming the previous window's requests came evenly. ``Retry-After``
is the time until one more request would be within the limit if none came meanwhile.
Refused requests being taken back, no window keeps more than the limit, so the previous
window is read only when even a full one could tip the count over: a request well within
its rate costs the cache no more round trips than a fixed window did. (A rate lowered since
the previous window may let the difference through once.)

The unattested refresh limit (``sessions.flows.device_binding``) counts with ``exceeded`` too.
A refused request is taken back out of the count (a decrement), so ``Retry-After`` holds
however often a client asked before it. A cache that cannot be reached raises
(``core.cache.UNAVAILABLE``): a limit that cannot count refuses, as a 503 (docs/operations.md
"Outages"); a request the cache fails after counting is taken back too, as far as the cache
still answers, so retries through a flapping Redis do not spend the client's budget. Only a
count that succeeded is ever taken back: no count falls below the requests it admitted. The
counting is a few lines on the project's own cache, so its one Redis client and its outage
handling serve rates too (a library would bring its own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from django.core.cache import cache

from .cache import UNAVAILABLE
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
    """Count one request under ``key``; the seconds to wait when the last ``rate.window``
    seconds (this window's count plus the previous window's weighted share) hold more than
    ``rate.limit`` requests, else None. A refused request is taken back out of the count, and
    so is one the cache fails after counting (reading the previous window): its 503 spends
    nothing, as far as the cache still answers."""
    index, elapsed = _window(rate, now)
    count = incr_in_window(f"{key}:{index}", 2 * rate.window)  # read again as the next window's previous one
    try:
        wait = _judge(key, rate, index, elapsed, count)
    except UNAVAILABLE:
        take_back(key, rate, now, quietly=True)
        raise
    if wait is not None:
        take_back(key, rate, now)
    return wait


def _judge(key: str, rate: Rate, index: int, elapsed: float, count: int) -> int | None:
    """The wait for the ``count``-th request of window ``index``, ``elapsed`` seconds into it; None within the rate."""
    share = 1 - elapsed / rate.window
    if count + rate.limit * share <= rate.limit:  # within it whatever the previous window held
        return None
    previous = int(cache.get(f"{key}:{index - 1}") or 0)
    if previous * share + count <= rate.limit:
        return None
    return _wait(rate, elapsed, previous, count - 1)


def take_back(key: str, rate: Rate, now: datetime, *, quietly: bool = False) -> None:
    """Uncount the request ``exceeded`` admitted (or refused) under ``key`` at ``now``: one
    refused further on (another bucket) does not spend this one. Only after a count that
    succeeded (an increment whose answer was lost may not have happened). ``quietly``: the
    request is failing anyway; a cache that cannot be reached leaves the count as it is."""
    index, _ = _window(rate, now)
    try:
        cache.decr(f"{key}:{index}")
    except ValueError:  # the window's count expired meanwhile: nothing left to take back
        pass
    except UNAVAILABLE:
        if not quietly:
            raise


def _window(rate: Rate, now: datetime) -> tuple[int, float]:
    """The clock-aligned window ``now`` falls in, and the seconds into it."""
    moment = now.timestamp()
    index = int(moment // rate.window)
    return index, moment - index * rate.window


def _wait(rate: Rate, elapsed: float, previous: int, counted: int) -> int:
    """Seconds from ``elapsed`` into this window until one more request is within the limit,
    if none comes meanwhile: later in this window, once the previous window's share has shrunk
    enough, or else in the next, once this window's ``counted`` share has."""
    window, limit, retry = rate.window, rate.limit, counted + 1
    if retry <= limit:  # room in this window but for the previous one's share (so previous > 0)
        at = window * (1 - (limit - retry) / previous)  # previous * (1 - at / window) + retry == limit
        return max(1, math.ceil(at - elapsed))
    at = window * (1 - (limit - 1) / counted)  # next window: counted * (1 - at / window) + 1 == limit
    return max(1, math.ceil(window - elapsed + at))
