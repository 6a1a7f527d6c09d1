"""``core.rates`` against the shared cache: ``Retry-After`` honest in every state a window can be
in (a retry at that second is served, one a second before is not), a refusal taken back
leaving both windows as they were, and racing requests of several clients sharing an address
leaving each bucket holding exactly what it admitted (a take-back never lowers anyone else's)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from hypothesis import given, settings
from hypothesis import strategies as st

from core import rates
from tests.concurrency import run_concurrently

_keys = itertools.count()


def _window_counts(key: str, index: int, previous: int, current: int, window: int) -> None:
    for offset, count in ((-1, previous), (0, current)):
        cache.set(f"{key}:{index + offset}", count, 2 * window + 5)
    cache.delete_many([f"{key}:{index + 1}", f"{key}:{index + 2}"])


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(1, 12), window=st.sampled_from([1, 2, 10, 60, 3600]), data=st.data(),
       into=st.floats(0, 1, exclude_max=True))
def test_retry_after_is_honest(limit: int, window: int, data: st.DataObject, into: float) -> None:
    """No window holds more than the limit (refusals are taken back), whatever it held before."""
    previous, current = data.draw(st.integers(0, limit)), data.draw(st.integers(0, limit))
    rate, key, index = rates.Rate(limit, window), f"vigil:test:honest:{next(_keys)}", 1_000_000
    now = datetime.fromtimestamp(index * window + into * window, tz=UTC)
    _window_counts(key, index, previous, current, window)
    wait = rates.exceeded(key, rate, now)
    if wait is None:
        return
    assert [cache.get(f"{key}:{index + offset}") for offset in (-1, 0)] == [previous, current]
    assert rates.exceeded(key, rate, now + timedelta(seconds=wait)) is None
    if wait > 1:
        _window_counts(key, index, previous, current, window)
        assert rates.exceeded(key, rate, now + timedelta(seconds=wait - 1)) is not None


def test_racing_clients_behind_one_address_leave_each_bucket_what_it_admitted() -> None:
    """An address's bucket (7) shared by four clients (3 each), 48 requests at once: exactly 7
    admitted, and each bucket's count is the number it admitted, the refused ones all taken back."""
    now = datetime.fromtimestamp(60 * 2_000_000 + 30, tz=UTC)
    per_client, per_address, run = rates.Rate(3, 60), rates.Rate(7, 60), next(_keys)

    def request(n: int) -> tuple[int, bool]:
        client_key, address_key = f"vigil:test:race:{run}:client:{n % 4}", f"vigil:test:race:{run}:address"
        if rates.exceeded(client_key, per_client, now) is not None:
            return n % 4, False
        if rates.exceeded(address_key, per_address, now) is not None:
            rates.take_back(client_key, per_client, now)
            return n % 4, False
        return n % 4, True

    admitted = [client for client, served in run_concurrently(48, request) if served]
    assert len(admitted) == 7
    assert cache.get(f"vigil:test:race:{run}:address:2000000") == 7
    for client in range(4):
        assert (cache.get(f"vigil:test:race:{run}:client:{client}:2000000") or 0) == admitted.count(client)
