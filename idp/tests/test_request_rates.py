"""The rates of ``/par`` (RFC 9126 §2.3's 429) and ``/device_authorization`` (RFC 8628 §3.1) for
public clients (idp/flows/request_rates.py): per (client, address) and per address, 429
``slow_down`` with ``Retry-After`` and nothing stored beyond them, another address untouched,
the window sliding (a burst straddling two windows held to the limit, ``Retry-After`` honest); the address seen through trusted proxies only; confidential
clients not counted; a cache outage refuses (503) rather than letting requests through
uncounted; a burst on PostgreSQL admits exactly the limit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import caches
from django.core.checks import run_checks
from django.test import Client as HttpClient
from django.urls import reverse

from clients.flows.registration import RegisteredClient, register_client
from core import rates
from core.cache import RedisCache
from core.models import SecurityEvent
from idp.models import DeviceAuthorization
from idp.oauth.grants.device_code import DEVICE_CODE
from tests.cache_outage import redis_unreachable
from tests.concurrency import run_concurrently

from .conftest import Pkce, authorize_params, form_post
from .jar_support import authenticated, keyed_client, request_params
from .test_outage import assert_json_503

pytestmark = pytest.mark.django_db
#: A window's start (a multiple of a minute): the tests count seconds into it.
WINDOW_START = datetime.fromtimestamp(1_800_000_000, tz=UTC)
HOME, ELSEWHERE = "203.0.113.7", "198.51.100.20"


@pytest.fixture
def frozen() -> Any:
    with time_machine.travel(WINDOW_START + timedelta(seconds=15), tick=False) as traveller:
        yield traveller


@pytest.fixture
def tv(db: Any) -> RegisteredClient:
    return register_client(name="TV", public=True, redirect_uris=[], client_id="tv-app", grant_types=[DEVICE_CODE])


def _push(client_id: str, pkce: Pkce, address: str = HOME, **headers: Any) -> Any:
    return form_post(HttpClient(REMOTE_ADDR=address), reverse("par"), authorize_params(client_id, pkce), **headers)


def _start(client_id: str = "tv-app", address: str = HOME, **headers: Any) -> Any:
    return form_post(HttpClient(REMOTE_ADDR=address), reverse("device-authorization"),
                     {"client_id": client_id, "scope": "openid"}, **headers)


def _waiting_pushes() -> int:
    """Pushed requests kept in the shared cache (idp.oauth.par's ``vigil:par:`` keys)."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        return sum(1 for _ in backend._cache.get_client().scan_iter(match="*vigil:par:*"))
    return sum(":vigil:par:" in key for key in backend._cache)  # type: ignore[attr-defined]  # LocMemCache's dict


def _refusals(event_type: str) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(event_type=event_type, reason="rate_limited"))


def _assert_slowed_down(response: Any, retry_after: int) -> None:
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["error"] == "slow_down" and "retry after" in body["error_description"]
    assert response["Retry-After"] == str(retry_after)
    assert response["Cache-Control"] == "no-store"


# --- /par --------------------------------------------------------------------------------------


def test_par_beyond_the_rate_is_429_recorded_and_stores_nothing(mobile_client, pkce, settings, frozen):
    settings.IDP_PAR_RATE = "2/min"
    client_id = mobile_client.client.client_id
    assert [_push(client_id, pkce).status_code for _ in range(2)] == [201, 201]
    assert _waiting_pushes() == 2
    refused = _push(client_id, pkce)
    _assert_slowed_down(refused, 75)  # 15 s into the minute; the two weigh on the next until 30 s into it
    assert _waiting_pushes() == 2
    assert SecurityEvent.objects.filter(event_type="oauth.par_accepted").count() == 2
    [event] = _refusals("oauth.par_refused")
    assert (event.outcome, event.client_id, event.ip_address) == ("denied", client_id, HOME)
    assert event.details == {"bucket": "client_address", "retry_after": 75}


def test_par_another_address_is_unaffected_and_the_window_slides(mobile_client, pkce, settings, frozen):
    settings.IDP_PAR_RATE = "1/min"
    client_id = mobile_client.client.client_id
    assert _push(client_id, pkce).status_code == 201
    assert _push(client_id, pkce).status_code == 429
    assert _push(client_id, pkce, ELSEWHERE).status_code == 201
    frozen.move_to(WINDOW_START + timedelta(seconds=59))
    _assert_slowed_down(_push(client_id, pkce), 61)
    frozen.move_to(WINDOW_START + timedelta(seconds=60))  # a new window, the last one's push still in it
    _assert_slowed_down(_push(client_id, pkce), 60)
    frozen.move_to(WINDOW_START + timedelta(seconds=120))
    assert _push(client_id, pkce).status_code == 201
    assert _waiting_pushes() == 3


def test_par_the_address_bucket_spans_public_clients(mobile_client, pkce, settings, frozen):
    """The caller names the client: more public clients give one address no more pushes."""
    settings.IDP_PAR_RATE, settings.IDP_PAR_ADDRESS_RATE = "2/min", "3/min"
    other = register_client(name="Other app", public=True, redirect_uris=["com.example.app:/oauth2redirect"],
                            first_party=True, client_id="other-app").client.client_id
    mobile = mobile_client.client.client_id
    assert [_push(c, pkce).status_code for c in (mobile, mobile, other, other)] == [201, 201, 201, 429]
    [event] = _refusals("oauth.par_refused")
    assert event.details["bucket"] == "address" and event.client_id == other
    assert _push(other, pkce, ELSEWHERE).status_code == 201


def test_par_one_client_hammered_does_not_spend_the_address_for_the_others(mobile_client, pkce, settings, frozen):
    settings.IDP_PAR_RATE, settings.IDP_PAR_ADDRESS_RATE = "1/min", "2/min"
    other = register_client(name="Other app", public=True, redirect_uris=["com.example.app:/oauth2redirect"],
                            first_party=True, client_id="other-app").client.client_id
    mobile = mobile_client.client.client_id
    assert [_push(mobile, pkce).status_code for _ in range(6)] == [201] + [429] * 5
    assert _push(other, pkce).status_code == 201
    assert {e.details["bucket"] for e in _refusals("oauth.par_refused")} == {"client_address"}


def test_par_of_a_confidential_client_is_not_counted(pkce, settings, frozen):
    """Its credential proves who pushes, from servers that push for all its users."""
    settings.IDP_PAR_RATE = settings.IDP_PAR_ADDRESS_RATE = "1/min"
    client, key = keyed_client("backend-app")
    pushes = [form_post(HttpClient(REMOTE_ADDR=HOME), reverse("par"),
                        {**request_params("backend-app", pkce), **authenticated("backend-app", key)})
              for _ in range(3)]
    assert [p.status_code for p in pushes] == [201, 201, 201]
    assert not _refusals("oauth.par_refused")


def test_par_refused_before_the_client_is_known_counts_nothing(mobile_client, pkce, settings, frozen):
    settings.IDP_PAR_RATE = settings.IDP_PAR_ADDRESS_RATE = "1/min"
    assert _push("nobody", pkce).json()["error"] == "invalid_client"
    assert _push(mobile_client.client.client_id, pkce).status_code == 201


# --- /device_authorization ---------------------------------------------------------------------


def test_device_authorization_beyond_the_rate_is_429_recorded_and_stores_nothing(tv, settings, frozen):
    settings.IDP_DEVICE_AUTHORIZATION_RATE = "2/min"
    assert [_start().status_code for _ in range(2)] == [200, 200]
    _assert_slowed_down(_start(), 75)
    assert DeviceAuthorization.objects.count() == 2
    [event] = _refusals("oauth.device_authorization")
    assert (event.outcome, event.client_id, event.ip_address) == ("denied", "tv-app", HOME)
    assert event.details == {"bucket": "client_address", "retry_after": 75}
    assert SecurityEvent.objects.filter(event_type="oauth.device_authorization", reason="started").count() == 2


def test_device_authorization_another_address_and_the_next_window(tv, settings, frozen):
    settings.IDP_DEVICE_AUTHORIZATION_RATE = "1/min"
    assert [_start().status_code, _start().status_code] == [200, 429]
    assert _start(address=ELSEWHERE).status_code == 200
    frozen.move_to(WINDOW_START + timedelta(seconds=60))
    assert _start().status_code == 429
    frozen.move_to(WINDOW_START + timedelta(seconds=120))
    assert _start().status_code == 200
    assert DeviceAuthorization.objects.count() == 3


def test_device_authorization_the_address_bucket_spans_public_clients(tv, settings, frozen):
    settings.IDP_DEVICE_AUTHORIZATION_RATE, settings.IDP_DEVICE_AUTHORIZATION_ADDRESS_RATE = "5/min", "2/min"
    register_client(name="CLI", public=True, redirect_uris=[], client_id="cli-app", grant_types=[DEVICE_CODE])
    assert [_start("tv-app").status_code, _start("cli-app").status_code, _start("cli-app").status_code] == [
        200, 200, 429]
    assert _refusals("oauth.device_authorization")[0].details["bucket"] == "address"
    assert DeviceAuthorization.objects.count() == 2


def test_device_authorization_of_a_confidential_client_is_not_counted(settings, frozen):
    settings.IDP_DEVICE_AUTHORIZATION_RATE = settings.IDP_DEVICE_AUTHORIZATION_ADDRESS_RATE = "1/min"
    registered = register_client(name="Kiosk", public=False, redirect_uris=[], client_id="kiosk",
                                 grant_types=[DEVICE_CODE])
    basic = _basic("kiosk", registered.secret)
    assert [_start("kiosk", HTTP_AUTHORIZATION=basic).status_code for _ in range(3)] == [200, 200, 200]


def _basic(client_id: str, secret: str | None) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# --- the address: behind trusted proxies, never what the client wrote -------------------------


@pytest.mark.parametrize("send", ["par", "device"])
def test_a_forged_forwarded_for_does_not_evade_the_rate(send, mobile_client, tv, pkce, settings, frozen):
    """No proxy is trusted: each X-Forwarded-For is the client's own writing; the peer counts."""
    settings.IDP_PAR_RATE = settings.IDP_DEVICE_AUTHORIZATION_RATE = "2/min"
    request = _sender(send, mobile_client, pkce)
    statuses = [request(HOME, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").status_code for n in range(4)]
    assert statuses[2:] == [429, 429]


@pytest.mark.parametrize("send", ["par", "device"])
def test_clients_behind_a_trusted_proxy_are_counted_apart(send, mobile_client, tv, pkce, settings, frozen):
    settings.VIGIL_TRUSTED_PROXIES = ["10.0.0.5"]
    settings.IDP_PAR_RATE = settings.IDP_DEVICE_AUTHORIZATION_RATE = "1/min"
    request = _sender(send, mobile_client, pkce)
    assert request("10.0.0.5", HTTP_X_FORWARDED_FOR=HOME).status_code in (200, 201)
    assert request("10.0.0.5", HTTP_X_FORWARDED_FOR=f"198.51.100.1, {HOME}").status_code == 429
    assert request("10.0.0.5", HTTP_X_FORWARDED_FOR=ELSEWHERE).status_code in (200, 201)
    assert {e.ip_address for e in SecurityEvent.objects.filter(reason="rate_limited")} == {HOME}


def test_an_ipv6_subscriber_is_one_address_across_its_64(tv, settings, frozen):
    settings.IDP_DEVICE_AUTHORIZATION_RATE = "1/min"
    assert _start(address="2001:db8:1:2::1").status_code == 200
    assert _start(address="2001:db8:1:2:ffff::9").status_code == 429
    assert _start(address="2001:db8:1:3::1").status_code == 200


def _sender(send: str, mobile_client: Any, pkce: Pkce) -> Callable[..., Any]:
    if send == "par":
        return lambda address, **headers: _push(mobile_client.client.client_id, pkce, address, **headers)
    return lambda address, **headers: _start("tv-app", address, **headers)


# --- the cache down: the rate cannot be counted, so the request is refused ---------------------


def test_while_the_cache_is_down_a_public_client_is_refused_and_nothing_is_stored(mobile_client, tv, pkce):
    with redis_unreachable():
        assert_json_503(_push(mobile_client.client.client_id, pkce))
        assert_json_503(_start())
    assert not DeviceAuthorization.objects.exists()
    assert not SecurityEvent.objects.filter(event_type__in=["oauth.par_accepted", "oauth.device_authorization"])
    assert _push(mobile_client.client.client_id, pkce).status_code == 201
    assert _start().status_code == 200


def test_while_the_cache_is_down_a_confidential_device_client_is_served(db):
    """Nothing of its request needs the cache: the outage takes only what it must."""
    registered = register_client(name="Kiosk", public=False, redirect_uris=[], client_id="kiosk",
                                 grant_types=[DEVICE_CODE])
    with redis_unreachable():
        response = _start("kiosk", HTTP_AUTHORIZATION=_basic("kiosk", registered.secret))
    assert response.status_code == 200, response.content
    assert DeviceAuthorization.objects.count() == 1


def _failing(monkeypatch: Any, method: str, keys: str) -> None:
    """Redis failing for one cache call on keys containing ``keys`` (after others succeeded)."""
    import redis

    backend = caches["default"]
    real = getattr(backend, method)

    def call(key: str, *args: Any, **kwargs: Any) -> Any:
        if keys in key:
            raise redis.ConnectionError("injected: the cache went away mid-request")
        return real(key, *args, **kwargs)

    monkeypatch.setattr(backend, method, call)


def test_a_cache_failing_after_the_count_spends_nothing(mobile_client, pkce, settings, frozen, monkeypatch):
    """Counted, then the previous window's read fails: the 503 is taken back out of the count,
    so the client's retry once the cache answers is served, not refused for a push never stored."""
    settings.IDP_PAR_RATE = "1/min"
    client_id = mobile_client.client.client_id
    with monkeypatch.context() as patch:
        _failing(patch, "get", ":client_address:")
        assert_json_503(_push(client_id, pkce))
    assert _waiting_pushes() == 0 and not _refusals("oauth.par_refused")
    assert _push(client_id, pkce).status_code == 201
    _assert_slowed_down(_push(client_id, pkce), 105)


def test_a_cache_failing_at_the_address_bucket_spends_nothing_of_the_clients(
    mobile_client, pkce, settings, frozen, monkeypatch
):
    settings.IDP_PAR_RATE = "1/min"
    client_id = mobile_client.client.client_id
    with monkeypatch.context() as patch:
        _failing(patch, "add", ":address:")
        assert_json_503(_push(client_id, pkce))
    assert _waiting_pushes() == 0
    assert _push(client_id, pkce).status_code == 201
    assert _push(client_id, pkce).status_code == 429


def test_a_count_the_cache_fails_to_take_back_stays_counted(monkeypatch):
    """The cache gone for the read and the take-back alike: the outage raises, and the count
    stays as it is (never lower than what was admitted)."""
    import redis

    rate, key, now = rates.Rate(1, 60), "vigil:test:outage", WINDOW_START + timedelta(seconds=15)
    with monkeypatch.context() as patch:
        _failing(patch, "get", key)
        _failing(patch, "decr", key)
        with pytest.raises(redis.ConnectionError, match="injected"):
            rates.exceeded(key, rate, now)
    assert caches["default"].get(f"{key}:{1_800_000_000 // 60}") == 1


# --- a burst: every request counted, exactly the limit admitted --------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_device_authorizations_admits_exactly_the_limit(settings):
    settings.IDP_DEVICE_AUTHORIZATION_RATE = "5/min"
    register_client(name="TV", public=True, redirect_uris=[], client_id="tv-app", grant_types=[DEVICE_CODE])
    with time_machine.travel(WINDOW_START + timedelta(seconds=15), tick=False):
        statuses = run_concurrently(16, lambda _: _start().status_code)
    assert sorted(statuses) == [200] * 5 + [429] * 11
    assert DeviceAuthorization.objects.count() == 5


# --- the settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("text, rate", [("120/min", rates.Rate(120, 60)), ("5/s", rates.Rate(5, 1)),
                                        (" 2 / hour ", rates.Rate(2, 3600)), ("10/day", rates.Rate(10, 86400)),
                                        ("3/M", rates.Rate(3, 60))])
def test_rates_are_read_in_drf_syntax(text: str, rate: rates.Rate) -> None:
    assert rates.parse(text) == rate


@pytest.mark.parametrize("text", ["", "60", "0/min", "-1/min", "60/", "60/week", "²/min", "1.5/min", "sixty/min"])
def test_a_rate_that_cannot_be_read_is_a_system_check_error(text: str, settings: Any) -> None:
    with pytest.raises(ValueError):
        rates.parse(text)
    settings.IDP_DEVICE_AUTHORIZATION_ADDRESS_RATE = text
    [problem] = [p for p in run_checks() if p.id == "vigil.E040"]
    assert "IDP_DEVICE_AUTHORIZATION_ADDRESS_RATE" in problem.msg


def test_the_defaults_pass_the_check() -> None:
    assert not [p for p in run_checks() if p.id == "vigil.E040"]


# --- the window slides (core.rates) -----------------------------------------------------------


def test_a_burst_straddling_two_windows_is_held_to_the_limit() -> None:
    """Fixed windows let 2x the limit through across their edge; the previous window's share
    keeps any 60 s to the limit, and a steady pace within it stays admitted."""
    rate, key = rates.Rate(4, 60), "vigil:test:straddle"
    end = WINDOW_START + timedelta(seconds=58)
    assert [rates.exceeded(key, rate, end) for _ in range(4)] == [None] * 4
    after_edge = WINDOW_START + timedelta(seconds=62)  # 4 x 56/60 = 3.7 still weigh
    assert rates.exceeded(key, rate, after_edge) == 13  # 4 x (1 - t/60) + 1 <= 4 from t = 15
    assert rates.exceeded(key, rate, WINDOW_START + timedelta(seconds=75)) is None  # 4 x 45/60 + 1 = 4
    assert rates.exceeded(key, rate, WINDOW_START + timedelta(seconds=75)) is not None


def test_refusals_are_not_counted() -> None:
    rate, key = rates.Rate(1, 60), "vigil:test:refusals"
    assert rates.exceeded(key, rate, WINDOW_START) is None
    waits = [rates.exceeded(key, rate, WINDOW_START + timedelta(seconds=30)) for _ in range(5)]
    assert waits == [90] * 5  # 30 s to this window's end, then a whole window for its one request
    assert rates.exceeded(key, rate, WINDOW_START + timedelta(seconds=119)) is not None
    assert rates.exceeded(key, rate, WINDOW_START + timedelta(seconds=120)) is None


def test_a_request_refused_by_the_address_spends_nothing_of_its_clients_bucket(mobile_client, pkce, settings, frozen):
    """Waiting out a busy address does not use up the client's own (client, address) budget."""
    settings.IDP_PAR_RATE, settings.IDP_PAR_ADDRESS_RATE = "2/min", "1/min"
    other = register_client(name="Other app", public=True, redirect_uris=["com.example.app:/oauth2redirect"],
                            first_party=True, client_id="other-app").client.client_id
    mobile = mobile_client.client.client_id
    assert _push(other, pkce).status_code == 201  # the address's one push
    assert [_push(mobile, pkce).status_code for _ in range(3)] == [429] * 3
    assert {e.details["bucket"] for e in _refusals("oauth.par_refused")} == {"address"}
    settings.IDP_PAR_ADDRESS_RATE = "10/min"  # the address frees up
    assert [_push(mobile, pkce).status_code for _ in range(3)] == [201, 201, 429]
    assert _refusals("oauth.par_refused")[-1].details["bucket"] == "client_address"

