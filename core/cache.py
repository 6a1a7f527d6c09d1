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
"""

from __future__ import annotations

from typing import Any

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
