"""Failures injected at the storage layer, for tests of ``core.outage`` (docs/operations.md
"Outages"): the code under test runs unchanged and meets the driver's own errors.

- ``database_down()``: every statement on the default connection fails with the driver's
  connection-lost error (psycopg's "server closed the connection unexpectedly", SQLite's
  "database is locked"), raised through Django's error wrapper exactly as a dropped
  connection surfaces. Savepoint statements still pass so a test's own transaction survives.
- ``cache_down(settings)``: the default cache becomes a real Redis client pointed at a port
  nobody listens on; every cache call fails with redis-py's ``ConnectionError``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection

_TRANSACTION_CONTROL = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", re.IGNORECASE)


def lost_connection_error() -> Exception:
    """The error the current database driver raises when the server has gone away."""
    driver: Any = connection.Database  # type: ignore[attr-defined]  # each backend's DB-API module; not in the stubs
    if connection.vendor == "postgresql":
        return driver.OperationalError("consuming input failed: server closed the connection unexpectedly")
    return driver.OperationalError("database is locked")


@contextmanager
def database_down(matching: Callable[[str], bool] = lambda sql: True,
                  error: Callable[[], Exception] = lost_connection_error) -> Iterator[list[str]]:
    """Fail every statement ``matching`` selects; yields the statements refused so far."""
    refused: list[str] = []

    def refuse(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if _TRANSACTION_CONTROL.match(sql) or not matching(sql):
            return execute(sql, params, many, context)
        refused.append(sql)
        with connection.wrap_database_errors:
            raise error()

    with connection.execute_wrapper(refuse):
        yield refused


def closed_port() -> int:
    """A local TCP port with nothing listening on it (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def cache_down(settings: Any) -> Iterator[None]:
    """Point the default cache at a Redis that is not there; restore it afterwards."""
    saved = settings.CACHES
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{closed_port()}/0"}}
    try:
        yield
    finally:
        settings.CACHES = saved
