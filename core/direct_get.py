"""One cache key read straight from Redis, for the value every request reads: the shared config
generation (``core.config_cache``).

Django's ``cache.get`` goes through the backend, a redis-py client, its connection pool and its
retry wrapper: about 100 µs of CPU per call on the bench machine, against about 20 µs for the
same ``GET`` sent, pre-encoded, on a connection held for it. ``DirectGet`` sends exactly that
``GET`` and decodes the answer with the backend's own serializer, so it returns what
``cache.get`` would. It is still one read of the server per call, made when the request asks:
nothing is remembered between calls, so it is exactly as current as ``cache.get``, and more so
with replicas configured (it always reads the first server, the one Django writes to, never a
replica).

Only for the production backend (``core.cache.RedisCache``); ``None`` means "not read here, ask
Django's cache" (another backend, or the key absent). A failure raises redis-py's error after
dropping the connection (a half-read answer is never read as the next one's); the next call
connects again. A held connection that answered its last call and is now closed (the server
restarted, or closed it as idle) is connected again once, at once, as Django's pool checks a
pooled connection before use; a timeout is never tried twice. The connection belongs to one
thread of one process: a forked child or another thread opens its own, never sharing a socket.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.core.cache import caches
from redis.exceptions import ConnectionError as RedisConnectionError

from .cache import RedisCache


class _Held(threading.local):
    backend: Any = None
    pid: int = 0
    connection: Any = None
    command: Any = None
    loads: Any = None
    answered: bool = False  # the connection answered since it was opened


class DirectGet:
    def __init__(self, key: str):
        self.key = key
        self._held = _Held()

    def __call__(self) -> Any:
        """The key's value as ``cache.get`` returns it; ``None`` when absent or not read here."""
        held = self._held
        backend = caches["default"]
        if held.backend is not backend or held.pid != os.getpid():
            self._open(backend)
        connection = held.connection
        if connection is None:
            return None
        reused = held.answered
        try:
            raw = self._read(connection)
        except RedisConnectionError:
            if not reused:
                raise
            raw = self._read(connection)  # closed by the server since the last call: once more, connecting
        return None if raw is None else held.loads(raw)

    def _read(self, connection: Any) -> Any:
        held = self._held
        try:
            connection.send_packed_command(held.command)
            raw = connection.read_response()
        except BaseException:
            held.answered = False
            connection.disconnect()
            raise
        held.answered = True
        return raw

    def _open(self, backend: Any) -> None:
        held = self._held
        if held.connection is not None and held.pid == os.getpid():
            held.connection.disconnect()
        held.backend, held.pid, held.connection, held.answered = backend, os.getpid(), None, False
        if type(backend) is not RedisCache:
            return
        # Django's RedisCacheClient internals (as core.cache uses them): the first server's pool,
        # whose settings (address, database, password, TLS, timeouts) the connection takes.
        client: Any = backend._cache  # RedisCacheClient: its internals are not in the stubs
        pool = client._get_connection_pool(True)
        connection = pool.connection_class(**pool.connection_kwargs)
        held.command = connection.pack_command("GET", backend.make_and_validate_key(self.key))
        held.loads = client._serializer.loads
        held.connection = connection
