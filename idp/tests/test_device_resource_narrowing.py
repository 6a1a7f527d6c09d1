"""RFC 8707 §2.2 at the device grant's token request (RFC 8628 §3.4): a poll may name
(repeating ``resource``) a subset of the resources the device asked for at
/device_authorization; the access token is for exactly those (its ``aud``, in the JWT and in
its row), the family keeps them all, so a later refresh may ask for another. Anything else is
``invalid_target`` (RFC 8707 §2), judged before the code's state (§3.5), yet a poll for its
pace: ``last_polled_at`` moves, and one too soon on a pending code is ``slow_down``. Nothing
else changes: the code is not redeemed or denied, the DPoP proof unspent. The same rule as the
code, refresh and client-credentials grants (``VigilGrantMixin.narrow_resources``).

Attacks: a device widening its token to a resource it never asked for (one the client is
registered for, or any other, or a malformed one), using refused polls to learn or move the
code's state, or to poll faster than the interval (RFC 8628 §3.5) unpaced."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone
from joserfc.jwk import ECKey

from clients.flows.registration import RegisteredClient, register_client
from core import jwt_tokens
from core.models import SecurityEvent
from idp.models import DeviceAuthorization, DeviceAuthorizationStatus
from idp.oauth.grants.device_code import DEVICE_CODE
from sessions.dpop.client import create_proof
from sessions.models import AccessToken, DeviceSession, RefreshToken

from .conftest import form_post
from .test_token import refresh

pytestmark = pytest.mark.django_db

API = "https://api.example.com"
ORDERS = "https://orders.example.com"
GRANTED = [API, ORDERS]
EVIL = "https://evil.example.com"
TV = "tv-app"


@pytest.fixture
def tv(db: Any) -> RegisteredClient:
    """A TV app registered for two resources."""
    registered = register_client(name="Living-room TV", public=True, redirect_uris=[], client_id=TV,
                                 grant_types=[DEVICE_CODE, "refresh_token"])
    registered.client.allowed_audiences = GRANTED
    registered.client.save()
    return registered


def start(resources: list[str]) -> dict[str, Any]:
    response = form_post(HttpClient(), reverse("device-authorization"),
                         {"client_id": TV, "scope": "openid offline_access", "resource": resources})
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def approved(browser: HttpClient, resources: list[str]) -> str:
    """The device code of an authorization for ``resources``, approved by the signed-in user."""
    started = start(resources)
    assert browser.post(reverse("device"), {"user_code": started["user_code"], "decision": "approve"}).status_code == 200
    return str(started["device_code"])


def poll(device_code: str, resource: str | list[str] | None = None, **headers: Any) -> Any:
    return form_post(HttpClient(), reverse("token"), {"grant_type": DEVICE_CODE, "device_code": device_code,
                                                      "client_id": TV, "resource": resource}, **headers)


def aud_of(body: dict[str, Any]) -> list[str]:
    """The access token's audience, as its JWT says and as its row says (they must agree)."""
    claims = jwt_tokens.verify(body["access_token"], typ="at+jwt")
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert AccessToken.objects.get(jti=claims["jti"]).audience == aud
    return aud


PACE = ("last_polled_at", "interval")


def state() -> tuple[Any, ...]:
    """Every row a refused poll must leave alone (events aside): all but the code's pace."""
    codes = [{k: v for k, v in row.items() if k not in PACE}
             for row in DeviceAuthorization.objects.order_by("pk").values()]
    return (codes,
            list(DeviceSession.objects.order_by("pk").values()), list(RefreshToken.objects.order_by("pk").values()),
            list(AccessToken.objects.order_by("pk").values()))


def pace() -> tuple[Any, int]:
    """What a refused poll does change, as any poll does (RFC 8628 §3.5)."""
    return DeviceAuthorization.objects.values_list(*PACE).get()


def events() -> Counter[tuple[str, str, str]]:
    return Counter(SecurityEvent.objects.values_list("event_type", "outcome", "reason"))


def assert_invalid_target(response: Any) -> None:
    assert response.status_code == 400 and response.json()["error"] == "invalid_target", response.content
    assert response["Cache-Control"] == "no-store" and response["Content-Type"] == "application/json"


@pytest.mark.parametrize("asked", [[API], [ORDERS], [ORDERS, API], [API, API]])
def test_the_access_token_is_for_exactly_the_resources_asked(browser: HttpClient, tv: RegisteredClient,
                                                             asked: list[str]) -> None:
    response = poll(approved(browser, GRANTED), asked)
    assert response.status_code == 200, response.content
    assert sorted(aud_of(response.json())) == sorted(set(asked))
    assert DeviceSession.objects.get().resource == GRANTED  # the family keeps the whole grant
    other = [r for r in GRANTED if r not in asked] or [API]
    later = refresh(response.json()["refresh_token"], TV, resource=other)
    assert later.status_code == 200 and aud_of(later.json()) == other  # RFC 8707 §2.2: another one later


def test_without_resource_the_token_is_for_every_granted_resource(browser: HttpClient, tv: RegisteredClient) -> None:
    response = poll(approved(browser, GRANTED))
    assert response.status_code == 200 and aud_of(response.json()) == GRANTED


@pytest.mark.parametrize("asked", [
    [EVIL],  # registered for nobody
    [API, EVIL],  # one good, one not: all refused
    [f"{API}#fragment"],  # RFC 8707 §2: no fragment
    ["api.example.com"], ["/orders"], [""],  # not absolute URIs
    [f"{API}/"],  # compared exactly
])
def test_a_resource_not_granted_is_invalid_target_and_the_code_stays_approved(
        browser: HttpClient, tv: RegisteredClient, asked: list[str]) -> None:
    device_code = approved(browser, GRANTED)
    before, counted = state(), events()
    with time_machine.travel(timezone.now(), tick=False):
        assert_invalid_target(poll(device_code, asked))
        assert state() == before and pace() == (timezone.now(), 5)  # counted as a poll, no more
        assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.APPROVED
        assert events() - counted == Counter({("oauth.error", "failure", "invalid_target"): 1})
        retried = poll(device_code, API)  # at once: an approved code's answer is its tokens (§3.5)
    assert retried.status_code == 200 and aud_of(retried.json()) == [API]


def test_a_resource_the_client_may_ask_for_but_the_device_did_not_is_invalid_target(
        browser: HttpClient, tv: RegisteredClient) -> None:
    device_code = approved(browser, [API])
    before = state()
    assert_invalid_target(poll(device_code, ORDERS))
    assert state() == before
    issued = poll(device_code)
    assert issued.status_code == 200 and aud_of(issued.json()) == [API]


def test_an_authorization_for_no_resource_cannot_be_given_one(browser: HttpClient, tv: RegisteredClient) -> None:
    """As at refresh (test_token.py::test_refresh_without_resource_grant_cannot_add_one)."""
    device_code = approved(browser, [])
    before = state()
    assert_invalid_target(poll(device_code, API))
    assert state() == before
    issued = poll(device_code)
    assert issued.status_code == 200 and aud_of(issued.json()) == [TV]


def test_a_pending_code_is_told_invalid_target_before_pending(tv: RegisteredClient) -> None:
    """Request errors come before RFC 8628 §3.5's answers, but a refused request is still a
    poll for the pace: it starts it, and the next poll too soon is ``slow_down``."""
    device_code = start(GRANTED)["device_code"]
    with time_machine.travel(timezone.now(), tick=False) as clock:
        before = state()
        assert_invalid_target(poll(device_code, EVIL))
        assert state() == before and pace() == (timezone.now(), 5)
        assert poll(device_code).json()["error"] == "slow_down"  # the refusal was a poll
        clock.shift(timedelta(seconds=11))
        assert_invalid_target(poll(device_code, EVIL))  # on time: the request's own error
        assert state() == before and pace() == (timezone.now(), 10)
        clock.shift(timedelta(seconds=11))
        assert poll(device_code, API).json()["error"] == "authorization_pending"  # a valid one is a poll
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.PENDING


def test_refused_polls_cannot_poll_faster_than_the_interval(tv: RegisteredClient) -> None:
    """Fast polls with a bad resource are told ``slow_down`` and grow the interval as any
    polls would (RFC 8628 §3.5); a good poll after them is judged by that interval. Nothing
    else changes, and each is recorded once (``oauth.error``, its answer)."""
    device_code = start(GRANTED)["device_code"]
    with time_machine.travel(timezone.now(), tick=False) as clock:
        before, counted = state(), events()
        assert_invalid_target(poll(device_code, EVIL))  # the first poll: not too soon
        for _ in range(3):
            too_soon = poll(device_code, [API, EVIL])
            assert too_soon.status_code == 400 and too_soon.json() == {"error": "slow_down"}
            assert too_soon["Cache-Control"] == "no-store"
        assert state() == before and pace() == (timezone.now(), 20)
        clock.shift(timedelta(seconds=16))  # enough for the first interval, not the grown one
        assert poll(device_code, API).json()["error"] == "slow_down"
        assert pace() == (timezone.now(), 25)
        clock.shift(timedelta(seconds=26))
        assert poll(device_code, API).json()["error"] == "authorization_pending"
        assert state() == before and pace() == (timezone.now(), 25)
    assert events() - counted == Counter({("oauth.error", "failure", "invalid_target"): 1,
                                          ("oauth.error", "failure", "slow_down"): 4,
                                          ("oauth.error", "failure", "authorization_pending"): 1})


def test_a_refused_poll_too_soon_does_not_spend_the_dpop_proof(browser: HttpClient, tv: RegisteredClient) -> None:
    """The ``slow_down`` of a refused poll, like its ``invalid_target``, comes before the proof
    is checked (RFC 9449 §11.1 replay): the same proof then works once the code is approved."""
    started = start(GRANTED)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        key = ECKey.generate_key("P-256", private=True)
        proof = create_proof(key, method="POST", url=f"{settings.IDP_ISSUER}/token")
        assert poll(started["device_code"]).json()["error"] == "authorization_pending"
        assert poll(started["device_code"], EVIL, HTTP_DPOP=proof).json()["error"] == "slow_down"
        assert browser.post(reverse("device"), {"user_code": started["user_code"],
                                                "decision": "approve"}).status_code == 200
        clock.shift(timedelta(seconds=11))
        issued = poll(started["device_code"], ORDERS, HTTP_DPOP=proof)
    assert issued.status_code == 200, issued.content
    assert issued.json()["token_type"] == "DPoP" and aud_of(issued.json()) == [ORDERS]


@pytest.mark.parametrize("decision", ["deny", "redeem", "redeem_long_ago", "expire"])
def test_any_state_is_told_invalid_target_first_and_keeps_its_answer(browser: HttpClient, tv: RegisteredClient,
                                                                     decision: str) -> None:
    """A redeemed code polled again inside the retry window is answered again (the same refresh
    token, an access token for the resource this poll names); after it, reuse. A refused poll
    before either counts as neither."""
    from sessions.flows.grace import grace_seconds

    started = start(GRANTED)
    choice = "deny" if decision == "deny" else "approve"
    assert browser.post(reverse("device"), {"user_code": started["user_code"], "decision": choice}).status_code == 200
    first = poll(started["device_code"]).json() if decision.startswith("redeem") else {}
    answer = {"deny": "access_denied", "redeem": "", "redeem_long_ago": "invalid_grant",
              "expire": "expired_token"}[decision]
    window = grace_seconds(DeviceSession.objects.get()) if first else 0
    seconds = {"expire": 601, "redeem_long_ago": window + 5}.get(decision, 6)
    with time_machine.travel(timezone.now() + timedelta(seconds=seconds), tick=False):
        before, paced = state(), pace()
        assert_invalid_target(poll(started["device_code"], EVIL))
        assert state() == before
        # Paced as a poll in that state would be: a denied code's moves, a spent or expired one's not.
        assert pace() == ((timezone.now(), 5) if decision == "deny" else paced)
        again = poll(started["device_code"], API)
    if answer:
        assert again.json()["error"] == answer
    else:
        assert again.status_code == 200 and again.json()["refresh_token"] == first["refresh_token"]
        assert aud_of(again.json()) == [API]


def test_an_unknown_code_is_invalid_grant_whatever_resource_it_names(browser: HttpClient, tv: RegisteredClient) -> None:
    register_client(name="Other TV", public=True, redirect_uris=[], client_id="other-tv", grant_types=[DEVICE_CODE])
    device_code = approved(browser, GRANTED)
    assert poll("nonsense", EVIL).json()["error"] == "invalid_grant"
    stolen = form_post(HttpClient(), reverse("token"), {"grant_type": DEVICE_CODE, "device_code": device_code,
                                                        "client_id": "other-tv", "resource": EVIL})
    assert stolen.json()["error"] == "invalid_grant"
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.APPROVED


def test_the_refusal_does_not_spend_the_dpop_proof(browser: HttpClient, tv: RegisteredClient) -> None:
    """The resources are judged before the proof (RFC 9449 §11.1 replay): the same proof then works."""
    key = ECKey.generate_key("P-256", private=True)
    proof = create_proof(key, method="POST", url=f"{settings.IDP_ISSUER}/token")
    device_code = approved(browser, GRANTED)
    assert_invalid_target(poll(device_code, EVIL, HTTP_DPOP=proof))
    issued = poll(device_code, ORDERS, HTTP_DPOP=proof)
    assert issued.status_code == 200, issued.content
    assert issued.json()["token_type"] == "DPoP" and aud_of(issued.json()) == [ORDERS]
    assert DeviceSession.objects.get().dpop_jkt  # a public client's family is bound to the key
