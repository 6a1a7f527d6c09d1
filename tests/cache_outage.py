"""The shared cache going away under a running process, with nothing else changing.

``core.outage_testing.cache_down`` swaps ``settings.CACHES``, which also sends
``setting_changed``: every per-process copy built under the old settings is dropped by that
signal alone (``idp.documents``, ``vigil.documents_fast_path``), so a test of "never a stale
copy while Redis is down" would pass even if the outage were not noticed. ``redis_unreachable``
replaces this thread's default cache with a real Redis client pointed at a closed port and
sends no signal: only the failing reads can keep a copy from being served.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import caches

from core.cache import RedisCache
from core.outage_testing import closed_port


@contextmanager
def redis_unreachable() -> Iterator[None]:
    handler = caches._connections  # type: ignore[attr-defined]  # Django's per-thread backends
    saved = getattr(handler, "default", None)
    handler.default = RedisCache(f"redis://127.0.0.1:{closed_port()}/0", {})
    try:
        yield
    finally:
        if saved is None:
            del handler.default
        else:
            handler.default = saved
