"""An attested refresh marks its DPoP proof's ``jti`` (RFC 9449 §11.1) with its attestation
challenge's claim, in one Redis round trip (``core.cache.claiming_first``, issue 19): the jti
first, and a replayed proof stops there. Attacked here: a replayed proof never consumes the
challenge it carries, never records an attestation failure or counts one against the device
(also when its evidence is forged, and on an unattested device's refresh, which counts its
rate), and Redis failing in that round trip leaves the proof unused, so the identical request
retried is served, not refused as a replay."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.core.cache import cache, caches
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError

from attestation.binding import RequestBinding, grant_hash
from attestation.flows.challenges import used_key
from attestation.models import Device
from core import keys
from core.cache import RedisCache
from core.models import SecurityEvent
from sessions.models import DeviceSession, RefreshToken

from .test_device_bound_tokens import App, challenge, ios_app, iphone  # noqa: F401 - fixtures
from .test_unattested_devices import Unattested, old_iphone  # noqa: F401 - fixtures

pytestmark = [pytest.mark.redis, pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]


@pytest.fixture(autouse=True)
def _on_redis() -> None:
    if not isinstance(caches["default"], RedisCache):
        pytest.skip("service-missing: the default cache is not Redis (REDIS_URL=redis://...)")


def events() -> Counter[tuple[str, str, str]]:
    return Counter(SecurityEvent.objects.values_list("event_type", "outcome", "reason"))


def replays(n: int) -> Counter[tuple[str, str, str]]:
    """What ``n`` replayed proofs record: the refusal and the error answered, nothing else."""
    return Counter({("dpop.refused", "denied", "dpop_replay"): n, ("oauth.error", "failure", "invalid_dpop_proof"): n})


def state() -> tuple[Any, ...]:
    return (list(Device.objects.order_by("pk").values_list("counter", "status")),
            sorted(RefreshToken.objects.values_list("token_hash", "rotated_at", "revoked_at")),
            list(DeviceSession.objects.values_list("status", "last_refresh_at")))


def streak() -> Any:
    return cache.get(f"vigil:attestation-failures:{DeviceSession.objects.get().sid}")


def with_proof(app: App, proof: dict[str, str]) -> None:
    """From now on the app sends this very DPoP proof (a replay after its first use)."""
    app.headers = lambda: dict(proof)  # type: ignore[method-assign]


def logged_in(app: App) -> dict[str, str]:
    """Signed in and refreshed once; returns the proof of that refresh, used."""
    keys.ensure_keys()
    assert app.login().status_code == 200
    proof = app.headers()
    with_proof(app, proof)
    assert app.refresh().status_code == 200
    return proof


def test_a_replayed_proof_is_refused_before_its_challenge_is_claimed(iphone: App) -> None:  # noqa: F811
    logged_in(iphone)
    fresh = iphone.next_challenge  # the challenge the replay carries: unclaimed
    before, recorded = state(), events()
    response = iphone.refresh()
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"
    assert "used before" in response.json()["error_description"]
    assert state() == before and streak() is None
    assert events() - recorded == replays(1)
    assert cache.get(used_key(fresh)) is None  # not consumed by the replay
    del iphone.headers  # a fresh proof, the same challenge: served
    assert iphone.refresh().status_code == 200
    assert cache.get(used_key(fresh)) is not None


FORGED = {
    # Each fails before the challenge is claimed, where the proof's jti would be marked with it.
    "another_platform": lambda app: {"attestation_type": "android-key", "client_data_signature": "AAAA",
                                     "attestation_challenge": challenge(app.client_id, "refresh")},
    "wrong_purpose": lambda app: {"attestation_type": "apple-appattest", "attestation": "AAAA",
                                  "attestation_challenge": challenge(app.client_id, "enroll")},
    "unsupported_type": lambda app: {"attestation_type": "tpm", "attestation_challenge": "x"},
    "missing": lambda app: {},
}


@pytest.mark.parametrize("forgery", list(FORGED))
def test_a_replayed_proof_with_forged_evidence_records_only_the_replay(iphone: App, forgery: str) -> None:  # noqa: F811
    """A captured proof and refresh token with evidence that fails before any claim (another
    platform's would revoke the family): the proof's jti is still judged first, so nothing is
    recorded, counted or revoked for it."""
    logged_in(iphone)
    before, recorded = state(), events()
    response = iphone.refresh(evidence=FORGED[forgery](iphone))
    assert response.json()["error"] == "invalid_dpop_proof", response.content
    assert state() == before and streak() is None
    assert events() - recorded == replays(1)
    del iphone.headers
    assert iphone.refresh(evidence=FORGED[forgery](iphone)).status_code in (400, 401)  # a fresh proof: judged
    assert events() - recorded != replays(1)


def test_a_replayed_proof_on_an_unattested_device_counts_no_refresh(old_iphone: Unattested,  # noqa: F811
                                                                    settings: Any) -> None:
    settings.SESSIONS_UNATTESTED_REFRESH_LIMIT = 2
    logged_in(old_iphone)  # one refresh counted in the window
    before, recorded = state(), events()
    for _ in range(3):  # over the limit if counted
        response = old_iphone.refresh()
        assert response.json()["error"] == "invalid_dpop_proof", response.content
    assert state() == before
    assert events() - recorded == replays(3)
    del old_iphone.headers
    assert old_iphone.refresh().status_code == 200  # the second refresh of the window, not the fifth


def test_redis_failing_in_the_combined_round_trip_leaves_the_proof_for_the_retry(
    iphone: App, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    """The jti and the challenge are marked together or not at all: a 503 leaves both unused, so
    the app's retry of the identical request (same proof, same evidence) is served."""
    keys.ensure_keys()
    assert iphone.login().status_code == 200
    assert iphone.refresh().status_code == 200
    binding = RequestBinding(iphone.next_challenge, iphone.client_id, "refresh_token",
                             grant_hash(iphone.refresh_token), dpop_jkt=iphone.jkt())
    evidence, proof = iphone.device.assertion_params(binding), iphone.headers()
    with_proof(iphone, proof)
    before, recorded = state(), events()
    real = Script.__call__

    def down(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(Script, "__call__", down)
    response = iphone.refresh(evidence=evidence)
    assert response.status_code == 503 and response.json()["error"] == "temporarily_unavailable"
    monkeypatch.setattr(Script, "__call__", real)
    assert state() == before and streak() is None
    assert set(events() - recorded) == {("service.unavailable", "failure", "cache_unavailable")}
    assert iphone.refresh(evidence=evidence).status_code == 200  # the identical request, retried
    assert iphone.refresh(evidence=evidence).json()["error"] == "invalid_dpop_proof"  # and now it is a replay


def test_a_reply_lost_after_the_script_ran_costs_the_retry_one_round_and_nothing_else(
    iphone: App, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    """Redis ran the claim and its answer was lost (a timeout): 503, and both marks stand. The
    app's retry with a new proof and the same evidence presents a used challenge: answered with a
    fresh one, counted against nothing; with that one the refresh goes through."""
    from redis.exceptions import TimeoutError as RedisTimeoutError

    keys.ensure_keys()
    assert iphone.login().status_code == 200
    assert iphone.refresh().status_code == 200
    binding = RequestBinding(iphone.next_challenge, iphone.client_id, "refresh_token",
                             grant_hash(iphone.refresh_token), dpop_jkt=iphone.jkt())
    evidence = iphone.device.assertion_params(binding)
    real = Script.__call__

    def lost(self: Any, *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        raise RedisTimeoutError("Timeout reading from 127.0.0.1:6379")

    monkeypatch.setattr(Script, "__call__", lost)
    assert iphone.refresh(evidence=evidence).status_code == 503
    monkeypatch.setattr(Script, "__call__", real)
    before = state()
    retry = iphone.refresh(evidence=evidence)
    assert retry.json()["error"] == "use_attestation_challenge" and "challenge_reused" in retry.json()["error_description"]
    assert state() == before and streak() is None
    iphone.next_challenge = retry["OAuth-Client-Attestation-Challenge"]
    assert iphone.refresh().status_code == 200
