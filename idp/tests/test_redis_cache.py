"""core.cache.RedisCache: Django's Redis backend, one redis client per pool instead of one per call."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.cache import RedisCache

pytestmark = pytest.mark.redis


def make() -> RedisCache:
    return RedisCache(os.environ["REDIS_URL"], {"KEY_PREFIX": f"vigil-test-{uuid.uuid4().hex}"})


def test_it_behaves_as_a_cache() -> None:
    cache = make()
    try:
        assert cache.add("k", {"n": 1}, 30)
        assert not cache.add("k", {"n": 2}, 30)  # single use guards (DPoP jti, challenges) rely on this
        assert cache.get("k") == {"n": 1}
        assert cache.add("counter", 0, 30)
        assert cache.incr("counter") == 1
        cache.delete("k")
        assert cache.get("k") is None
    finally:
        cache.delete_many(["k", "counter"])


def test_one_client_is_reused_across_calls_and_threads_share_it_safely() -> None:
    cache = make()
    inner = cache._cache
    assert inner.get_client("a") is inner.get_client("b", write=True)
    try:
        with ThreadPoolExecutor(8) as pool:
            won = list(pool.map(lambda i: cache.add("once", i, 30), range(64)))
        assert won.count(True) == 1
    finally:
        cache.delete("once")
