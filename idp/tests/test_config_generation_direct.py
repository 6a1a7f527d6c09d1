"""The config generation read on a connection of its own (core/direct_get.py, used by
core/config_cache.py): on a real Redis it returns exactly what Django's cache would, reads the
server on every call (a change published by another process is seen at the very next read),
never reuses a connection after a failure, a fork or a cache change, and a Redis that is down
still means "copies bypassed"."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import cache, caches
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import config_cache
from core.cache import RedisCache
from core.direct_get import DirectGet
from core.outage_testing import cache_down

pytestmark = pytest.mark.redis


@pytest.fixture
def prefix(settings: Any) -> Iterator[str]:
    """The default cache on the test Redis under a key prefix of this test's own."""
    prefix = f"vigil-test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": os.environ["REDIS_URL"],
                                   "KEY_PREFIX": prefix}}
    yield prefix
    another_process(prefix).delete_many([config_cache.GENERATION_KEY, "some-key"])


def another_process(prefix: str) -> RedisCache:
    """A cache client of its own, as another web instance has."""
    return RedisCache(os.environ["REDIS_URL"], {"KEY_PREFIX": prefix})


def test_it_reads_what_djangos_cache_reads(prefix: str) -> None:
    read = DirectGet("some-key")
    assert read() is None  # absent: the caller asks Django's cache (which adds the generation)
    for value in ("3f1c0a9e2b7d4c55", 42, {"not": "a string"}):
        another_process(prefix).set("some-key", value, timeout=None)
        assert read() == value == cache.get("some-key")


def test_every_call_reads_the_server(prefix: str) -> None:
    config_cache.clear_local()
    config_cache.cached("k", lambda: "old")
    for n in range(3):
        another_process(prefix).set(config_cache.GENERATION_KEY, f"published-elsewhere-{n}", timeout=None)
        assert config_cache._shared_generation() == f"published-elsewhere-{n}"
        assert config_cache.cached("k", lambda n=n: f"new-{n}") == f"new-{n}"  # type: ignore[misc]


def test_a_failed_read_drops_the_connection(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that times out mid-answer must not leave that answer to be read as the next one's."""
    read = DirectGet("some-key")
    cache.set("some-key", "first", timeout=None)
    assert read() == "first"
    connection = read._held.connection
    real = connection.read_response

    def times_out(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(connection, "read_response", real)
        raise RedisTimeoutError("Timeout reading from socket")

    monkeypatch.setattr(connection, "read_response", times_out)
    with pytest.raises(RedisTimeoutError):
        read()
    assert connection._sock is None  # disconnected: the late answer is never read
    cache.set("some-key", "second", timeout=None)
    assert read() == "second"


def test_a_forked_child_opens_its_own_connection(prefix: str) -> None:
    read = DirectGet("some-key")
    read()
    parents = read._held.connection
    read._held.pid = -1  # as in a child forked after the first read (os.getpid() differs)
    read()
    assert read._held.connection is not parents and read._held.pid == os.getpid()
    assert parents._sock is not None  # the parent's socket is not the child's to close


def test_each_thread_has_its_own_connection(prefix: str) -> None:
    read = DirectGet("some-key")
    read()
    seen: list[Any] = []

    def in_another_thread() -> None:
        read()
        seen.append(read._held.connection)

    thread = threading.Thread(target=in_another_thread)
    thread.start()
    thread.join()
    assert seen and seen[0] is not None and seen[0] is not read._held.connection


def test_a_cache_configured_elsewhere_is_followed(prefix: str, settings: Any) -> None:
    read = DirectGet("some-key")
    cache.set("some-key", "on-redis", timeout=None)
    assert read() == "on-redis"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert read() is None and read._held.connection is None  # not Redis: Django's cache answers
    assert caches["default"].get("some-key") is None


def test_with_redis_down_the_copies_are_bypassed(prefix: str, settings: Any) -> None:
    config_cache.clear_local()
    config_cache.cached("k", lambda: "copy")
    with cache_down(settings):
        with pytest.raises(RedisConnectionError):
            DirectGet(config_cache.GENERATION_KEY)()
        assert config_cache._shared_generation() is None
        assert config_cache.cached("k", lambda: "from-the-database") == "from-the-database"
        assert config_cache.held("k") is None


def _server_closes(connection: Any) -> None:
    """The server ends this connection (a restart, its idle ``timeout``, ``CLIENT KILL``)."""
    server = redis.Redis.from_url(os.environ["REDIS_URL"])
    client_id = connection.send_command("CLIENT", "ID") or connection.read_response()
    server.client_kill_filter(_id=client_id)


def test_a_connection_the_server_closed_is_opened_again(prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    """As Django's pool does (it checks a pooled connection before use): a held connection that the
    server closed since the last call is not a cache outage, the copies stay usable."""
    read = DirectGet(config_cache.GENERATION_KEY)
    another_process(prefix).set(config_cache.GENERATION_KEY, "published", timeout=None)
    assert read() == "published"
    closed = read._held.connection
    _server_closes(closed)
    another_process(prefix).set(config_cache.GENERATION_KEY, "published-again", timeout=None)
    assert read() == "published-again"
    _server_closes(read._held.connection)
    with caplog.at_level("WARNING", logger="core.config_cache"):
        assert config_cache._shared_generation() == "published-again"
    assert not caplog.records  # no "shared generation unavailable"


def test_a_refused_connection_is_not_tried_twice(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a connection that answered before is opened again, once: a Redis that is down fails the
    first attempt, without a second wait."""
    read = DirectGet("some-key")
    read()
    connection = read._held.connection
    sent: list[bytes] = []

    def refused(command: Any, **kwargs: Any) -> None:
        sent.append(command)
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(connection, "send_packed_command", refused)
    with pytest.raises(RedisConnectionError):
        read()
    assert len(sent) == 2  # the held connection, then one new one
    with pytest.raises(RedisConnectionError):
        read()
    assert len(sent) == 3  # a connection that never answered is not tried again


def test_after_a_timeout_a_refused_connection_is_not_tried_twice(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    read = DirectGet("some-key")
    read()
    connection = read._held.connection
    attempts: list[str] = []

    def times_out(command: Any, **kwargs: Any) -> None:
        attempts.append("timeout")
        raise RedisTimeoutError("Timeout reading from socket")

    monkeypatch.setattr(connection, "send_packed_command", times_out)
    with pytest.raises(RedisTimeoutError):
        read()

    def refused(command: Any, **kwargs: Any) -> None:
        attempts.append("refused")
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(connection, "send_packed_command", refused)
    with pytest.raises(RedisConnectionError):
        read()
    assert attempts == ["timeout", "refused"]


def test_a_tls_and_password_url_gives_a_tls_connection_with_its_password(settings: Any) -> None:
    """The connection takes the first server's pool settings: ``rediss://`` is TLS, with the URL's
    password and database (nothing is sent here: opening is lazy)."""
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache",
                                   "LOCATION": "rediss://:s3cret@redis.internal:6380/4"}}
    read = DirectGet("some-key")
    read._open(caches["default"])
    connection = read._held.connection
    assert isinstance(connection, redis.SSLConnection)
    assert (connection.host, connection.port, connection.db, connection.password) == ("redis.internal", 6380, 4, "s3cret")
    assert connection.socket_timeout == 2.0 and connection.socket_connect_timeout == 1.0
