"""Django's Redis cache backend, keeping one ``redis.Redis`` client per connection pool, with
timeouts that make a dead Redis fail fast.

Django's ``RedisCacheClient`` builds a new ``redis.Redis`` object for every cache call, and
redis-py fills a table of about 170 response callbacks in each constructor: a measurable
share of a token request, which makes several cache calls (config generation, DPoP replay,
challenge, failure streak). Clients are thread-safe and share the pool's connections, so
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

``claiming_first`` carries a mark that must be made before anything else the request marks or
records (a DPoP proof's ``jti``, RFC 9449 §11.1, before the attestation challenge's claim): the
next ``claim`` on the same Redis makes both in one round trip, in that order, and stops at the
first already made (a Lua script: a replayed proof never consumes the challenge); anything else
(``settle_first``: a security event recorded, a count, a revocation, the block's normal end)
makes it alone first. Redis refusing connections before that round trip leaves both unmade (the
identical request retried is served); a reply lost after Redis ran it leaves both made, as two
separate claims would. A Redis that refuses scripts (an ACL without ``@scripting``, a
Redis-compatible store without Lua) gets the same claims one round trip each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NoReturn

from django.core.cache import DEFAULT_CACHE_ALIAS, BaseCache, caches
from django.core.cache import cache as default_cache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from redis import exceptions as redis_exceptions

logger = logging.getLogger(__name__)

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
        self._claim_script: dict[int, Any] = {}
        #: This Redis refused the claim script once (ACL, a Redis-compatible store without scripts).
        self.scripts_refused = False


    def claim_reading(self, key: str, timeout: int, keys: tuple[str, ...]) -> tuple[bool, dict[str, Any]]:
        """``add(key, 1, timeout)`` and ``get`` of each of ``keys``, in one round trip."""
        client = self._cache.get_client(write=True)
        pipeline = client.pipeline(transaction=False)
        pipeline.set(self.make_and_validate_key(key), self._serializer.dumps(1), ex=max(1, timeout), nx=True)
        for other in keys:
            pipeline.get(self.make_and_validate_key(other))
        added, *values = pipeline.execute()
        return bool(added), self._loaded(keys, values)

    def claim_in_order(self, claims: list[tuple[str, int]], keys: tuple[str, ...]) -> tuple[int, dict[str, Any]]:
        """``add(key, 1, timeout)`` of each of ``claims`` in order, stopping at the first already
        made, then ``get`` of each of ``keys``: one round trip (a Lua script, atomic). Returns the
        1-based position of the claim found made (0: all made) and, when all were made, the values.
        A Redis that refused the script once gets the same claims one round trip each."""
        if self.scripts_refused:
            return self._claim_one_by_one(claims, keys)
        client = self._cache.get_client(write=True)
        script = self._claim_script.get(id(client))
        if script is None:
            script = self._claim_script[id(client)] = client.register_script(_CLAIM_IN_ORDER)
        made = [self.make_and_validate_key(key) for key, _ in claims]
        try:
            reply = script(keys=[*made, *(self.make_and_validate_key(k) for k in keys)],
                           args=[len(claims), self._serializer.dumps(1), *(max(1, t) for _, t in claims)])
        except redis_exceptions.ResponseError as error:  # scripts refused (ACL, a Redis-like store): nothing ran
            self.scripts_refused = True
            logger.warning("Redis refused the claim script (%s): claims are made one round trip each", error)
            return self._claim_one_by_one(claims, keys)
        stopped, *values = reply
        return int(stopped), ({} if stopped else self._loaded(keys, values))

    def _claim_one_by_one(self, claims: list[tuple[str, int]], keys: tuple[str, ...]) -> tuple[int, dict[str, Any]]:
        """``claim_in_order`` without a script: the same order and stop, a round trip per claim."""
        for position, (key, timeout) in enumerate(claims[:-1], start=1):
            if not self.add(key, 1, timeout=max(1, timeout)):
                return position, {}
        added, values = self.claim_reading(*claims[-1], keys)
        return (0, values) if added else (len(claims), {})

    @property
    def _serializer(self) -> Any:
        return self._cache._serializer  # type: ignore[attr-defined]  # Django's: values read back as ``get`` would

    def _loaded(self, keys: tuple[str, ...], values: list[Any]) -> dict[str, Any]:
        return {k: None if v is None else self._serializer.loads(v) for k, v in zip(keys, values, strict=True)}


# KEYS: the claims, then the keys to read; ARGV: the number of claims, the value, each claim's timeout.
_CLAIM_IN_ORDER = """
local n = tonumber(ARGV[1])
for i = 1, n do
  if not redis.call('SET', KEYS[i], ARGV[2], 'NX', 'EX', ARGV[2 + i]) then return {i} end
end
local out = {0}
for i = n + 1, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) end
return out
"""


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


def _backend(cache: BaseCache) -> BaseCache:
    """Django's proxy of the default cache is the backend itself."""
    return caches[DEFAULT_CACHE_ALIAS] if cache is default_cache else cache


@dataclass
class FirstClaim:
    """A mark to make before anything else the request marks or records (``claiming_first``);
    ``refused`` raises the caller's own refusal when it was made before (a replay)."""

    cache: BaseCache
    key: str
    timeout: int
    refused: Callable[[], NoReturn]
    done: bool = False

    def settle(self) -> None:
        """Make it now, alone, unless done (a replay raises ``refused``)."""
        if self.done:
            return
        added = _add(self.cache, self.key, self.timeout)
        self.done = True
        if not added:
            self.refused()


_first: ContextVar[FirstClaim | None] = ContextVar("vigil_cache_first_claim", default=None)


@contextmanager
def claiming_first(first: FirstClaim | None) -> Iterator[None]:
    """Within: ``first`` is made with the next ``claim`` on the same Redis (one round trip, before
    it), or alone by ``settle_first``; a block that ends normally has made it. A block left by an
    error leaves it unmade: that request was refused or failed, and its retry is not a replay."""
    if first is None:
        yield
        return
    token = _first.set(first)
    try:
        yield
    finally:
        _first.reset(token)
    first.settle()


def settle_first() -> None:
    """Make the pending first claim now, alone (before a side effect: an event, a count)."""
    first = _first.get()
    if first is not None:
        first.settle()


def claim(cache: BaseCache, key: str, timeout: int) -> bool:
    """Mark ``key`` used for ``timeout`` seconds (at least 1); False when it already was (atomic:
    of two concurrent claims exactly one wins). A pending first claim is made before it."""
    cache = _backend(cache)
    first = _first.get()
    pending = first if first is not None and not first.done else None
    if pending is not None and not (_backend(pending.cache) is cache and isinstance(cache, RedisCache)):
        pending.settle()  # another cache: alone, first
        pending = None
    ahead = _ahead.get()
    reads = ahead.keys if ahead is not None and not ahead.done else None
    if pending is None:
        if reads is None or not isinstance(cache, RedisCache):
            return _add(cache, key, timeout)
        assert ahead is not None
        added, ahead.values = cache.claim_reading(key, timeout, reads)
        ahead.done = True
        return added
    assert isinstance(cache, RedisCache)
    stopped, values = cache.claim_in_order([(pending.key, pending.timeout), (key, timeout)], reads or ())
    pending.done = True
    if stopped == 1:
        pending.refused()
    if ahead is not None and reads is not None and stopped == 0:
        ahead.values, ahead.done = values, True
    return stopped == 0


def _add(cache: BaseCache, key: str, timeout: int) -> bool:
    return bool(_backend(cache).add(key, 1, timeout=max(1, timeout)))
