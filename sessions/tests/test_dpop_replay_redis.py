"""The jti replay cache is shared: two web processes (two cache clients) on one Redis (RFC 9449 §11.1)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from core.cache import RedisCache  # the backend production settings use
from sessions.dpop import DPoPError, Reason, thumbprint, verify_proof
from sessions.dpop.replay import remember_jti, replay_key

from .conftest import DPOP_NOW, TOKEN_URL

pytestmark = pytest.mark.redis


@pytest.fixture
def prefix() -> Iterator[str]:
    yield f"vigil-test-{uuid.uuid4().hex}"


def client(prefix: str) -> RedisCache:
    """A cache client of its own, as another web process would have."""
    return RedisCache(os.environ["REDIS_URL"], {"KEY_PREFIX": prefix})


def test_replay_seen_by_another_process(prefix: str) -> None:
    web1, web2 = client(prefix), client(prefix)
    try:
        assert remember_jti("jkt-A", "jti-1", timeout=60, cache=web1)
        assert not remember_jti("jkt-A", "jti-1", timeout=60, cache=web2)
        assert remember_jti("jkt-B", "jti-1", timeout=60, cache=web2)
    finally:
        web1.delete_many([replay_key("jkt-A", "jti-1"), replay_key("jkt-B", "jti-1")])


def test_entry_lives_exactly_its_timeout(prefix: str) -> None:
    web1 = client(prefix)
    key = replay_key("jkt-A", "jti-2")
    try:
        assert remember_jti("jkt-A", "jti-2", timeout=330.2, cache=web1)
        ttl = redis.Redis.from_url(os.environ["REDIS_URL"]).ttl(web1.make_and_validate_key(key))
        assert 329 <= ttl <= 331
    finally:
        web1.delete(key)


def test_verify_proof_uses_the_configured_shared_cache(settings: Any, prefix: str, make_proof: Callable[..., str]) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "dpop": {"BACKEND": "core.cache.RedisCache", "LOCATION": os.environ["REDIS_URL"], "KEY_PREFIX": prefix},
    }
    settings.SESSIONS_DPOP_REPLAY_CACHE = "dpop"
    proof = make_proof(jti="via-settings")
    try:
        verify_proof(proof, method="POST", url=TOKEN_URL, now=DPOP_NOW)
        with pytest.raises(DPoPError, match=Reason.REPLAY):
            verify_proof(proof, method="POST", url=TOKEN_URL, now=DPOP_NOW)
        assert client(prefix).get(replay_key(thumbprint(jwt_header_jwk(proof)), "via-settings")) == 1
    finally:
        client(prefix).delete(replay_key(thumbprint(jwt_header_jwk(proof)), "via-settings"))


def jwt_header_jwk(proof: str) -> dict[str, Any]:
    import base64
    import json

    segment = proof.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))["jwk"]


def test_concurrent_replays_from_many_processes_admit_exactly_one(prefix: str) -> None:
    clients = [client(prefix) for _ in range(24)]
    try:
        with ThreadPoolExecutor(max_workers=24) as pool:
            results = list(pool.map(lambda c: remember_jti("jkt-A", "race", timeout=60, cache=c), clients))
        assert results.count(True) == 1
    finally:
        clients[0].delete(replay_key("jkt-A", "race"))
