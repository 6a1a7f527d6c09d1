"""Redis round trips of an attested refresh (issue 19): the DPoP proof's jti is marked and the
session's failure streak is read in the same round trip as the challenge's claim
(``core.cache.claim`` inside ``claiming_first`` and ``reading_ahead``), so a warm attested iOS
refresh makes two: the config generation, then the jti, the challenge and the streak. The read happens at the claim, never later, and never from another
request. Redis failing in that round trip, or when the streak ends, is a 503 with nothing
rotated or counted against the device, and the streak is still reported by the next good proof."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest
from django.core.cache import cache, caches
from redis.connection import AbstractConnection

from core.cache import FirstClaim, RedisCache, claim, claiming_first, reading_ahead, settle_first

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


def test_a_warm_attested_refresh_makes_two_round_trips(iphone: App, round_trips: RoundTrips) -> None:  # noqa: F811
    from core import keys

    keys.ensure_keys()
    iphone.login()
    assert iphone.refresh().status_code == 200  # warm: config copies, health snapshot
    round_trips.count = 0
    assert iphone.refresh().status_code == 200
    assert round_trips.count == 2


# --- a first claim (the DPoP proof's jti) made with the next claim ------------------------------
def _first(key: str, refusals: list[str], cache_: Any = None) -> FirstClaim:
    def refused() -> NoReturn:
        refusals.append(key)
        raise PermissionError(key)

    return FirstClaim(cache_ if cache_ is not None else cache, key, 60, refused)


def test_a_first_claim_rides_with_the_next_claim_and_the_read_ahead(key: str, round_trips: RoundTrips) -> None:
    cache.set(f"{key}-streak", 3, 60)
    round_trips.count, refusals = 0, list[str]()
    first = _first(f"{key}-jti", refusals)
    with claiming_first(first), reading_ahead(f"{key}-streak") as ahead:
        assert claim(cache, key, 60) is True
    assert round_trips.count == 1 and refusals == []
    assert first.done and cache.get(f"{key}-jti") == 1 and cache.get(key) == 1
    assert ahead.get(cache, f"{key}-streak") == 3
    cache.delete(f"{key}-jti")


def test_a_first_claim_made_before_stops_the_round_trip(key: str) -> None:
    assert claim(cache, f"{key}-jti", 60)
    refusals: list[str] = []
    with pytest.raises(PermissionError), claiming_first(_first(f"{key}-jti", refusals)):
        claim(cache, key, 60)
    assert refusals == [f"{key}-jti"]
    assert cache.get(key) is None  # the second claim was not made
    cache.delete(f"{key}-jti")


def test_the_second_claim_made_before_still_makes_the_first(key: str) -> None:
    assert claim(cache, key, 60)
    refusals: list[str] = []
    with claiming_first(first := _first(f"{key}-jti", refusals)):
        assert claim(cache, key, 60) is False
    assert first.done and refusals == [] and cache.get(f"{key}-jti") == 1
    cache.delete(f"{key}-jti")


def test_a_block_without_a_claim_makes_the_first_alone_at_its_end_or_before_an_event(key: str) -> None:
    refusals: list[str] = []
    with claiming_first(_first(f"{key}-jti", refusals)):
        assert cache.get(f"{key}-jti") is None
    assert cache.get(f"{key}-jti") == 1
    with pytest.raises(PermissionError), claiming_first(_first(f"{key}-jti", refusals)):
        settle_first()  # what core.events.build does before recording
        pytest.fail("a replayed first claim refuses at once")
    assert refusals == [f"{key}-jti"]
    cache.delete(f"{key}-jti")


def test_a_block_left_by_an_error_leaves_the_first_unmade(key: str) -> None:
    refusals: list[str] = []
    with pytest.raises(RuntimeError), claiming_first(first := _first(f"{key}-jti", refusals)):
        raise RuntimeError("Redis went away")
    assert not first.done and cache.get(f"{key}-jti") is None and refusals == []


def test_a_first_claim_in_another_cache_is_made_alone_before(key: str, round_trips: RoundTrips) -> None:
    from django.core.cache.backends.locmem import LocMemCache

    other = LocMemCache("vigil-test-other", {})
    refusals: list[str] = []
    round_trips.count = 0
    with claiming_first(first := _first(f"{key}-jti", refusals, other)):
        assert claim(cache, key, 60) is True
    assert first.done and other.get(f"{key}-jti") == 1 and round_trips.count == 1



def test_a_read_ahead_belongs_to_its_own_thread_and_block(key: str) -> None:
    """Under gthread workers each request has a thread: another thread's claim neither fills nor
    uses this block's read-ahead, and a block left by an error leaves nothing to the next one."""
    import threading

    cache.set(f"{key}-streak", 1, 60)
    with reading_ahead(f"{key}-streak") as ahead:
        other = threading.Thread(target=lambda: claim(cache, f"{key}-other", 60))
        other.start()
        other.join()
        assert not ahead.done and ahead.values == {}
        cache.set(f"{key}-streak", 2, 60)
        assert claim(cache, key, 60) is True
    assert ahead.get(cache, f"{key}-streak") == 2
    with pytest.raises(RuntimeError), reading_ahead(f"{key}-streak") as left:
        raise RuntimeError("the proof failed")
    assert claim(cache, f"{key}-next", 60) is True  # the next request's claim: not read ahead
    assert not left.done and left.values == {}
    cache.delete_many([f"{key}-other", f"{key}-next"])


# --- Redis failing in the claim's round trip, or just after it ----------------------------------
def _refresh_state(iphone: App) -> tuple[Any, ...]:  # noqa: F811
    from attestation.models import Device
    from core.models import SecurityEvent
    from sessions.models import RefreshToken

    return (Device.objects.get().counter, sorted(RefreshToken.objects.values_list("token_hash", "rotated_at")),
            sorted(SecurityEvent.objects.exclude(event_type="service.unavailable")
                   .values_list("event_type", "outcome", "reason")))


def _assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.content
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response["Retry-After"]) > 0


def test_redis_failing_in_the_claims_round_trip_is_a_503_with_nothing_written_or_counted(
    iphone: App, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    from redis.commands.core import Script
    from redis.exceptions import ConnectionError as RedisConnectionError

    from core import keys
    from sessions.models import DeviceSession

    keys.ensure_keys()
    iphone.login()
    assert iphone.refresh().status_code == 200
    streak = f"vigil:attestation-failures:{DeviceSession.objects.get().sid}"
    before = _refresh_state(iphone)
    real = Script.__call__  # the claim's round trip: the jti, the challenge and the streak

    def down(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(Script, "__call__", down)
    _assert_unavailable(iphone.refresh())
    monkeypatch.setattr(Script, "__call__", real)
    assert _refresh_state(iphone) == before  # no rotation, no counter, no event against the device
    assert cache.get(streak) is None
    assert iphone.refresh().status_code == 200  # the same token, the same (unclaimed) challenge


def test_redis_failing_when_the_streak_ends_keeps_the_streak_for_the_next_good_refresh(
    iphone: App, monkeypatch: pytest.MonkeyPatch, settings: Any, mobile_client: Any,  # noqa: F811
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from attestation.models import Device
    from core import keys
    from core.models import SecurityEvent
    from risk.models import RiskPolicy
    from sessions.models import DeviceSession, RefreshToken

    from .test_device_bound_tokens import challenge

    settings.SESSIONS_ATTESTATION_MAX_FAILURES = 5
    settings.SESSIONS_RISK_ATTESTATION_STREAK = 1
    RiskPolicy.objects.create(client=mobile_client.client, attestation_failures="record")
    keys.ensure_keys()
    iphone.login()
    forged = {"attestation_type": "apple-appattest", "attestation": "AAAA",
              "attestation_challenge": challenge(iphone.client_id, "refresh")}
    assert iphone.refresh(evidence=forged).json()["error"] == "invalid_client_attestation"
    streak = f"vigil:attestation-failures:{DeviceSession.objects.get().sid}"
    assert cache.get(streak) == 1
    counter, tokens = Device.objects.get().counter, list(RefreshToken.objects.values_list("token_hash", "rotated_at"))
    real_delete = RedisCache.delete

    def down(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        if key == streak:
            raise RedisConnectionError("Connection closed by server.")
        return real_delete(self, key, *args, **kwargs)

    monkeypatch.setattr(RedisCache, "delete", down)
    _assert_unavailable(iphone.refresh(use_next=False))
    monkeypatch.setattr(RedisCache, "delete", real_delete)
    assert list(RefreshToken.objects.values_list("token_hash", "rotated_at")) == tokens  # not rotated
    assert Device.objects.get().counter == counter + 1  # the proof's write, done once, as before issue 19
    assert cache.get(streak) == 1  # not reset: still to be reported
    assert not SecurityEvent.objects.filter(event_type="risk.signal", reason="attestation_failures").exists()
    assert iphone.refresh(use_next=False).status_code == 200  # a fresh assertion, a higher counter
    [signal] = SecurityEvent.objects.filter(event_type="risk.signal", reason="attestation_failures")
    assert signal.details["failures"] == 1
    assert cache.get(streak) is None


def test_a_redis_that_refuses_scripts_gets_the_claims_one_by_one(key: str, monkeypatch: pytest.MonkeyPatch,
                                                                 round_trips: RoundTrips,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """An ACL without ``@scripting`` or a Redis-compatible store without Lua answers the script
    with an error, before running anything: the same claims, in the same order, one round trip
    each, and the next requests do not try the script again."""
    from redis.commands.core import Script
    from redis.exceptions import NoPermissionError

    backend = caches["default"]
    monkeypatch.setattr(backend, "scripts_refused", False)
    tried: list[int] = []

    def refused(self: Any, *args: Any, **kwargs: Any) -> Any:
        tried.append(1)
        raise NoPermissionError("this user has no permissions to run the 'evalsha' command")

    monkeypatch.setattr(Script, "__call__", refused)
    cache.set(f"{key}-streak", 4, 60)
    round_trips.count, refusals = 0, list[str]()
    with claiming_first(first := _first(f"{key}-jti", refusals)), reading_ahead(f"{key}-streak") as ahead:
        assert claim(cache, key, 60) is True
    assert round_trips.count == 2 and tried == [1]  # the jti, then the challenge with the read
    assert first.done and refusals == [] and cache.get(f"{key}-jti") == 1 and cache.get(key) == 1
    assert ahead.get(cache, f"{key}-streak") == 4
    assert "refused the claim script" in caplog.text
    with pytest.raises(PermissionError), claiming_first(_first(f"{key}-jti", refusals)):
        claim(cache, f"{key}-second", 60)
    assert refusals == [f"{key}-jti"] and cache.get(f"{key}-second") is None and tried == [1]
    cache.delete(f"{key}-jti")


def test_an_attested_refresh_without_scripts_still_refuses_a_replay_first(
    iphone: App, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    from redis.commands.core import Script
    from redis.exceptions import ResponseError

    from attestation.flows.challenges import used_key
    from core import keys

    monkeypatch.setattr(caches["default"], "scripts_refused", False)

    def unknown(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise ResponseError("unknown command 'EVALSHA'")

    monkeypatch.setattr(Script, "__call__", unknown)
    keys.ensure_keys()
    iphone.login()
    proof = iphone.headers()
    iphone.headers = lambda: dict(proof)  # type: ignore[method-assign]
    assert iphone.refresh().status_code == 200
    fresh = iphone.next_challenge
    response = iphone.refresh()  # the same proof again
    assert response.json()["error"] == "invalid_dpop_proof"
    assert cache.get(used_key(fresh)) is None


def test_two_requests_racing_with_one_proof_make_exactly_one_pair_of_claims(key: str) -> None:
    """The same proof sent twice at once (a replay raced against the original), each with its own
    challenge: exactly one request makes its marks; the other is refused at the jti and leaves its
    challenge unclaimed."""
    import threading

    barrier, outcomes = threading.Barrier(8), list[str]()

    def attempt(index: int) -> None:
        refusals: list[str] = []
        barrier.wait()
        try:
            with claiming_first(_first(f"{key}-jti", refusals)):
                outcomes.append("claimed" if claim(cache, f"{key}-challenge-{index}", 60) else "reused")
        except PermissionError:
            outcomes.append("replay")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["claimed"] + ["replay"] * 7
    made = [i for i in range(8) if cache.get(f"{key}-challenge-{i}") is not None]
    assert len(made) == 1  # only the winner's challenge is used
    cache.delete_many([f"{key}-jti", *(f"{key}-challenge-{i}" for i in range(8))])
