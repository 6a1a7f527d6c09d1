"""The challenge endpoint's rate (``ATTESTATION_CHALLENGE_RATE``), counted by ``core.rates`` as
the OAuth endpoints' are: 429 ``slow_down`` with an honest ``Retry-After`` (refused a second
before it, served at it, however often refused meanwhile) and a recorded refusal; another address
untouched; an address forged in
``X-Forwarded-For`` changes nothing; a burst admits exactly the limit (DRF's own throttle read
its history and wrote it back, so parallel requests all passed); the cache down refuses (503);
a rate that cannot be read is system check ``attestation.E004``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.core.checks import run_checks
from django.test import Client as HttpClient
from django.urls import reverse

from core.models import SecurityEvent
from idp.tests.test_outage import assert_json_503
from tests.cache_outage import redis_unreachable
from tests.concurrency import run_concurrently

pytestmark = pytest.mark.django_db
WINDOW_START = datetime.fromtimestamp(1_800_000_000, tz=UTC)  # a multiple of a minute
HOME, ELSEWHERE = "203.0.113.7", "198.51.100.20"


def _ask(address: str = HOME, **headers: Any) -> Any:
    return HttpClient(REMOTE_ADDR=address).post(
        reverse("attestation:challenge"), urlencode({"client_id": "mobile-app", "purpose": "refresh"}),
        content_type="application/x-www-form-urlencoded", **headers)


def _refusals() -> list[Any]:
    return list(SecurityEvent.objects.filter(event_type="attestation.challenge", outcome="denied", reason="throttled"))


def test_beyond_the_rate_is_429_until_retry_after(oauth_client: Any, settings: Any) -> None:
    settings.ATTESTATION_CHALLENGE_RATE = "2/min"
    with time_machine.travel(WINDOW_START + timedelta(seconds=15), tick=False) as traveller:
        assert [_ask().status_code for _ in range(2)] == [200, 200]
        refused = _ask()
        assert refused.status_code == 429 and refused.json()["error"] == "slow_down"
        assert refused["Retry-After"] == "75"  # 30 s into the next window, the two count half
        [event] = _refusals()
        assert event.details["retry_after"] == 75
        assert _ask(ELSEWHERE).status_code == 200
        assert _ask(HTTP_X_FORWARDED_FOR=ELSEWHERE).status_code == 429  # not a trusted proxy's header
        traveller.shift(74)
        assert _ask().status_code == 429  # the refusals were not counted: the wait did not grow
        traveller.shift(1)
        assert _ask().status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_burst_admits_exactly_the_limit(client_factory: Any, settings: Any) -> None:
    settings.ATTESTATION_CHALLENGE_RATE = "5/min"
    client_factory("mobile-app")
    with time_machine.travel(WINDOW_START + timedelta(seconds=15), tick=False):
        statuses = run_concurrently(16, lambda _: _ask().status_code)
    assert sorted(statuses) == [200] * 5 + [429] * 11
    assert len(_refusals()) == 11


def test_while_the_cache_is_down_a_challenge_is_refused(oauth_client: Any) -> None:
    """The rate cannot be counted: refused (503) rather than handed out uncounted."""
    with redis_unreachable():
        assert_json_503(_ask())
    assert _ask().status_code == 200


@pytest.mark.parametrize("text", ["", "120", "0/min", "120/week", "many/min"])
def test_a_rate_that_cannot_be_read_is_a_system_check_error(text: str, settings: Any) -> None:
    settings.ATTESTATION_CHALLENGE_RATE = text
    [problem] = [p for p in run_checks() if p.id == "attestation.E004"]
    assert "ATTESTATION_CHALLENGE_RATE" in problem.msg


def test_the_default_passes_the_check() -> None:
    assert not [p for p in run_checks() if p.id == "attestation.E004"]
