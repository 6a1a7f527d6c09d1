"""When a genuine Play Integrity token was last decoded with given credentials for a package
(``play_integrity_api``: the proof that our configuration works, which makes Google's shared
403 "not authorized to decode" the device's): kept in this process and in the shared cache.

Kept per process only, a fresh worker (a restart, a scale-out, a quiet night) knew of no
decode and answered another project's token with an uncounted 503 until a genuine one came
by, though another worker had just decoded one. The shared cache is told at most a few times
per window (``SHARE_EVERY`` of it), so the hot path pays nothing most of the time, and is read
only when this process knows of nothing recent: on that 403, a rare answer. A cache that
cannot be reached is not an error here: the process's own memory decides, as before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading

from django.core.cache import cache

from core.cache import UNAVAILABLE

logger = logging.getLogger("vigil.play_integrity")

#: (API base URL, service account, package name).
Decoding = tuple[str, str, str]
#: The shared cache is told again once this share of the window has passed since it was.
SHARE_EVERY = 0.25

_lock = threading.Lock()
_seen: dict[Decoding, dt.datetime] = {}
_shared: dict[Decoding, dt.datetime] = {}


def _key(decoding: Decoding) -> str:
    return "vigil:play-integrity:decoded:" + hashlib.sha256("\x00".join(decoding).encode()).hexdigest()[:40]


def remember(decoding: Decoding, now: dt.datetime, window: dt.timedelta) -> None:
    """A genuine token was decoded ``now``."""
    with _lock:
        _seen[decoding] = now
        told = _shared.get(decoding)
        if told is not None and now - told < window * SHARE_EVERY:
            return
        _shared[decoding] = now
    try:
        cache.set(_key(decoding), now.timestamp(), int(window.total_seconds()) + 60)
    except UNAVAILABLE:
        logger.info("could not share a Play Integrity decode: the cache is unavailable", exc_info=True)


def last(decoding: Decoding, now: dt.datetime, window: dt.timedelta) -> dt.datetime | None:
    """The latest genuine decode this process or, when it knows of none within ``window``,
    any process told the shared cache of."""
    with _lock:
        mine = _seen.get(decoding)
    if mine is not None and now - mine <= window:
        return mine
    try:
        stamp = cache.get(_key(decoding))
    except UNAVAILABLE:
        return mine
    if not isinstance(stamp, (int, float)):
        return mine
    theirs = dt.datetime.fromtimestamp(stamp, tz=dt.UTC)
    return theirs if mine is None or theirs > mine else mine


def forget_local() -> None:
    """This process's memory only (tests; a fresh process)."""
    with _lock:
        _seen.clear()
        _shared.clear()
