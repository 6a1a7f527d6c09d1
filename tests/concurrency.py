"""Run the same work in N threads released together, for races on PostgreSQL.

Each thread uses its own database connection (Django's are per thread) and closes it.
A thread that raises or hangs fails the test with its own error, rather than leaving a
``None`` in the results for a later assertion to trip over."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connections

T = TypeVar("T")


def run_concurrently(count: int, work: Callable[[int], T], *, timeout: float = 60) -> list[T]:
    """``[work(0), ..., work(count - 1)]``, all started at once (a barrier)."""
    barrier = threading.Barrier(count)
    results: list[T | None] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout)
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001 - reported by the calling thread below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not [t for t in threads if t.is_alive()], f"threads still running after {timeout} s"
    assert not errors, errors
    return results  # type: ignore[return-value]
