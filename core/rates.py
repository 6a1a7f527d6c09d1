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
``Retry-After`` holds however often a client asked before it: refusals are not counted. A
request answered with an outage's 503 after it was admitted gets its count back too
(``kept_unless_outage``, ``core.outage_undo``). A cache that cannot be reached raises
(``core.cache.UNAVAILABLE``): a limit that cannot count refuses, as a 503 (docs/operations.md
"Outages"); a request the cache fails after counting is taken back too, as far as the cache
still answers, so retries through a flapping Redis do not spend the client's budget. Only a
count that succeeded is ever taken back: no count falls below the requests it admitted. The
counting is a few lines on the project's own cache, so its one Redis client and its outage
handling serve rates too (a library would bring its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from django.core.cache import cache

from .cache import UNAVAILABLE
from .counters import incr_in_window
from .outage_undo import undo_on_outage

#: DRF's periods: the first letter of ``s``/``sec``/``second``, ``m``/``min``, ``h``/``hour``, ``d``/``day``.
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECONDS = 1_000_000  # in a second: windows are measured in whole microseconds


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
    nothing, as far as the cache still answers. Once every count a request needs admitted it,
    ``kept_unless_outage`` hands each back should the request end in an outage's 503."""
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


def kept_unless_outage(key: str, rate: Rate, now: datetime) -> None:
    """The admitted request's count under ``key`` is taken back if the request is answered with
    an outage's 503 later on (``core.outage_undo``: the database failing the refresh
    it admitted, say): a client retrying through an outage spends none of its rate."""
    undo_on_outage(lambda: take_back(key, rate, now, quietly=True))


def _judge(key: str, rate: Rate, index: int, elapsed: int, count: int) -> int | None:
    """The wait for the ``count``-th request of window ``index``, ``elapsed`` microseconds into
    it; None within the rate. Whole numbers throughout: ``count + previous * (1 - elapsed / span)
    <= limit`` multiplied out by ``span``, so a boundary is never missed by a rounding."""
    span = rate.window * MICROSECONDS
    if count * span <= rate.limit * elapsed:  # within it whatever the previous window held (at most the limit)
        return None
    previous = int(cache.get(f"{key}:{index - 1}") or 0)
    if previous * (span - elapsed) <= (rate.limit - count) * span:
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


def _window(rate: Rate, now: datetime) -> tuple[int, int]:
    """The clock-aligned window ``now`` falls in, and the microseconds into it (exactly: a
    float's rounding once made ``Retry-After`` a second longer than needed)."""
    moment = (now - EPOCH) // timedelta(microseconds=1)
    index, elapsed = divmod(moment, rate.window * MICROSECONDS)
    return index, elapsed


def _wait(rate: Rate, elapsed: int, previous: int, counted: int) -> int:
    """Whole seconds from ``elapsed`` (microseconds) into this window until one more request is
    within the limit, if none comes meanwhile: later in this window, once the previous window's
    share has shrunk enough, or else in the next, once this window's ``counted`` share has. The
    first microsecond ``at`` where it is: the least whole ``at`` with ``weight * (span - at) <=
    room * span``, which is ``span - room * span // weight``."""
    span, limit, retry = rate.window * MICROSECONDS, rate.limit, counted + 1
    if retry <= limit:  # room in this window but for the previous one's share (so previous > 0)
        at = span - (limit - retry) * span // previous
    else:  # in the next window, the retry its only request and this window's ``counted`` its previous
        at = span + span - (limit - 1) * span // counted
    return max(1, -(-(at - elapsed) // MICROSECONDS))
