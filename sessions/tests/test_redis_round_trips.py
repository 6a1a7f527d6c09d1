"""Redis round trips of an attested refresh (issue 19): the session's failure streak is read in
the same round trip as the challenge's claim (``core.cache.claim`` inside ``reading_ahead``), so
a warm attested iOS refresh makes three: the config generation, the DPoP proof's jti, the
challenge with the streak. The read happens at the claim, never later, and never from another
request."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache, caches
from redis.connection import AbstractConnection

from core.cache import RedisCache, claim, reading_ahead

from .test_device_bound_tokens import App, ios_app, iphone  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.redis, pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]


@pytest.fixture(autouse=True)
def _on_redis() -> None:
    if not isinstance(caches["default"], RedisCache):
        pytest.skip("service-missing: the default cache is not Redis (REDIS_URL=redis://...)")


@pytest.fixture
def key() -> Iterator[str]:
    name = f"vigil-test-claim-{uuid.uuid4().hex}"
    yield name
    cache.delete_many([name, f"{name}-streak"])


class RoundTrips:
    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    """Counts what redis-py sends (a pipeline is sent at once: one round trip)."""
    seen = RoundTrips()
    send = AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> Any:
        seen.count += 1
        return send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return seen


def test_a_claim_is_single_use(key: str) -> None:
    assert claim(cache, key, 60) is True
    assert claim(cache, key, 60) is False
    assert claim(caches["default"], key, 60) is False


def test_the_read_ahead_happens_with_the_claim(key: str, round_trips: RoundTrips) -> None:
    cache.set(f"{key}-streak", 2, 60)
    round_trips.count = 0
    with reading_ahead(f"{key}-streak") as ahead:
        assert claim(cache, key, 60) is True
        cache.set(f"{key}-streak", 5, 60)  # changed after the claim: not what was read
    assert round_trips.count == 2  # the claim with the read, then the set
    assert ahead.get(cache, f"{key}-streak") == 2
    assert ahead.get(cache, "vigil-not-read-ahead") is None  # anything else is read now


def test_without_a_claim_nothing_is_read_ahead(key: str) -> None:
    cache.set(f"{key}-streak", 3, 60)
    with reading_ahead(f"{key}-streak") as ahead:
        pass
    cache.set(f"{key}-streak", 4, 60)
    assert not ahead.done
    assert ahead.get(cache, f"{key}-streak") == 4  # read when asked, not a stale value


def test_a_refused_claim_still_reads_ahead(key: str) -> None:
    cache.set(f"{key}-streak", 1, 60)
    assert claim(cache, key, 60)
    with reading_ahead(f"{key}-streak") as ahead:
        assert claim(cache, key, 60) is False
    assert ahead.get(cache, f"{key}-streak") == 1


def test_a_warm_attested_refresh_makes_three_round_trips(iphone: App, round_trips: RoundTrips) -> None:  # noqa: F811
    from core import keys

    keys.ensure_keys()
    iphone.login()
    assert iphone.refresh().status_code == 200  # warm: config copies, health snapshot
    round_trips.count = 0
    assert iphone.refresh().status_code == 200
    assert round_trips.count == 3
