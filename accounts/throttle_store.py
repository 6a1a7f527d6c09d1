"""The throttle's counters in the shared cache, in as few round trips as the backend allows.

An attempt reserves itself in up to three buckets (``throttle.buckets_for``). On Redis the
reservation is one ``MULTI``/``EXEC``: every bucket's ``INCR`` (the count with this attempt),
its ``EXPIRE`` (the reset time runs from the latest attempt) and the ``GET`` of its latest
admitted attempt travel together, in one round trip, and a Redis failing mid-way counts the
attempt in no bucket. Other backends (the database cache, local memory in development) make
one call per step. Times are whole milliseconds, which Django's Redis serializer stores as
plain integers, so ``cache.get`` and a raw ``GET`` read the same value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from core.counters import incr_in_window


def _redis() -> tuple[Any, Any] | None:
    """The default cache and its Redis client, or ``None`` when the cache is not Redis."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    return backend, backend._cache.get_client(write=True)


def reserve(keys: list[str], last_keys: list[str], ttl: int) -> tuple[list[int], list[int | None]]:
    """Add one to each counter in ``keys`` (each then lives ``ttl`` seconds) and read each of
    ``last_keys``: ``(counts, lasts)``, in the order given."""
    redis = _redis()
    if redis is None:
        counts = [incr_in_window(key, ttl) for key in keys]
        for key in keys:
            cache.touch(key, ttl)
        found = cache.get_many(last_keys)
        return counts, [found.get(key) for key in last_keys]
    backend, client = redis
    with client.pipeline(transaction=True) as pipe:
        for key, last_key in zip(keys, last_keys, strict=True):
            stored = backend.make_and_validate_key(key)
            pipe.incr(stored)
            pipe.expire(stored, ttl)
            pipe.get(backend.make_and_validate_key(last_key))
        replies = pipe.execute()
    return [int(n) for n in replies[0::3]], [None if v is None else int(v) for v in replies[2::3]]


def release(keys: Iterable[str], ttl: int) -> None:
    """Take back one reservation from each counter."""
    keys = list(keys)
    redis = _redis()
    if redis is None:
        for key in keys:
            try:
                cache.decr(key)
            except ValueError:  # expired meanwhile
                pass
        return
    backend, client = redis
    with client.pipeline(transaction=True) as pipe:
        for key in keys:
            stored = backend.make_and_validate_key(key)
            pipe.decr(stored)
            pipe.expire(stored, ttl)  # a counter that expired meanwhile must not stay for ever
        pipe.execute()
