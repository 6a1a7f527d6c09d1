"""Django's Redis cache backend, keeping one ``redis.Redis`` client per connection pool, with
timeouts that make a dead Redis fail fast.

Django's ``RedisCacheClient`` builds a new ``redis.Redis`` object for every cache call, and
redis-py fills a table of about 170 response callbacks in each constructor: a measurable
share of a token request, which makes four or five cache calls (DPoP replay, failure
streak, config generation). Clients are thread-safe and share the pool's connections, so
keeping one per pool changes nothing else.

redis-py waits 5 s to connect and 5 s for each answer by default, and a token request makes
several cache calls: behind an unreachable Redis a worker would hang for tens of seconds per
request. ``DEFAULT_OPTIONS`` (overridden by ``CACHES["default"]["OPTIONS"]``, which
``vigil/settings.py`` fills from ``REDIS_CONNECT_TIMEOUT`` and ``REDIS_SOCKET_TIMEOUT``)
cut that to about a second, so the request fails at once with one of ``UNAVAILABLE`` and
``core.outage`` answers 503 (docs/operations.md "Outages").
A pool reconnects by itself on the next call once Redis is back.

``claim`` marks a single-use value (an attestation challenge, a DPoP proof) and, inside
``reading_ahead``, reads other keys in the same round trip (one pipeline): an attested
refresh reads its session's failure streak with its challenge's claim instead of in a round
trip of its own (issue 19: about 0.2 ms of CPU and a network wait per refresh).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, BaseCache, caches
from django.core.cache import cache as default_cache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from redis import exceptions as redis_exceptions

# The cache could not be reached or did not answer in time (BusyLoadingError, a Redis still
# loading its data after a restart, is a ConnectionError too).
UNAVAILABLE: tuple[type[Exception], ...] = (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError)

CONNECT_TIMEOUT_SECONDS = 1.0
SOCKET_TIMEOUT_SECONDS = 2.0
# Connection-pool options: fail fast. redis-py does not retry a failed command by default, and
# none is configured: a retry would only double the wait, and the client retries the request
# after ``Retry-After``.
DEFAULT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
    "socket_timeout": SOCKET_TIMEOUT_SECONDS,
}


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]  # RedisCacheClient internals, not in the stubs
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]  # as above
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        params = {**params, "OPTIONS": {**DEFAULT_OPTIONS, **params.get("OPTIONS", {})}}
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient


    def claim_reading(self, key: str, timeout: int, keys: tuple[str, ...]) -> tuple[bool, dict[str, Any]]:
        """``add(key, 1, timeout)`` and ``get`` of each of ``keys``, in one round trip."""
        client = self._cache.get_client(write=True)
        serializer = self._cache._serializer  # type: ignore[attr-defined]  # Django's: values read back as ``get`` would
        pipeline = client.pipeline(transaction=False)
        pipeline.set(self.make_and_validate_key(key), serializer.dumps(1), ex=max(1, timeout), nx=True)
        for other in keys:
            pipeline.get(self.make_and_validate_key(other))
        added, *values = pipeline.execute()
        return bool(added), {k: None if v is None else serializer.loads(v) for k, v in zip(keys, values, strict=True)}


@dataclass
class ReadAhead:
    """Keys to read with the next ``claim`` inside ``reading_ahead``, and what was read."""

    keys: tuple[str, ...]
    values: dict[str, Any] = field(default_factory=dict)
    done: bool = False

    def get(self, cache: BaseCache, key: str) -> Any:
        """The value read ahead, or (nothing was claimed meanwhile, or another cache) a ``get`` now."""
        if self.done and key in self.values:
            return self.values[key]
        return cache.get(key)


_ahead: ContextVar[ReadAhead | None] = ContextVar("vigil_cache_read_ahead", default=None)


@contextmanager
def reading_ahead(*keys: str) -> Iterator[ReadAhead]:
    """Within: the first ``claim`` on the Redis cache also reads ``keys`` (``ReadAhead.get``
    afterwards). A read, so only its timing moves: to the claim, a little earlier."""
    ahead = ReadAhead(keys)
    token = _ahead.set(ahead)
    try:
        yield ahead
    finally:
        _ahead.reset(token)


def claim(cache: BaseCache, key: str, timeout: int) -> bool:
    """Mark ``key`` used for ``timeout`` seconds (at least 1); False when it already was (atomic:
    of two concurrent claims exactly one wins)."""
    if cache is default_cache:  # Django's proxy of the default cache: the backend itself
        cache = caches[DEFAULT_CACHE_ALIAS]
    ahead = _ahead.get()
    if ahead is None or ahead.done or not isinstance(cache, RedisCache):
        return bool(cache.add(key, 1, timeout=max(1, timeout)))
    added, ahead.values = cache.claim_reading(key, timeout, ahead.keys)
    ahead.done = True
    return added
