"""Impossible travel and new country, end to end through the token endpoint, with real
public addresses located by the shipped GeoLite2 City database (docs/risk.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.urls import reverse

from core.models import SecurityEvent
from idp.tests.conftest import PASSWORD, get_code, query_of
from risk import testing as net
from risk.errors import STEP_UP_DESCRIPTION
from risk.models import StepUpDemand, UserRiskProfile
from sessions.models import DeviceSession, SessionStatus

pytestmark = pytest.mark.django_db

MOBILE_REDIRECT = "com.example.app:/oauth2redirect"
T0 = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock(time_machine: Any) -> Any:
    time_machine.move_to(T0, tick=False)
    return time_machine


def sign_in(browser: Any, client_id: str, pkce: Any, ip: str) -> dict[str, Any]:
    code, _ = get_code(browser, client_id, pkce)
    response = net.exchange(code, pkce.verifier, client_id, MOBILE_REDIRECT, ip)
    assert response.status_code == 200, response.content
    return response.json()


def signals(kind: str) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(event_type="risk.signal", reason=kind))


def test_paris_then_sydney_an_hour_later_requires_step_up(clock, browser, mobile_client, pkce, user):
    client_id = mobile_client.client.client_id
    tokens = sign_in(browser, client_id, pkce, net.PARIS)
    clock.shift(timedelta(hours=1))

    refused = net.refresh(tokens["refresh_token"], client_id, net.SYDNEY)

    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_grant", "error_description": STEP_UP_DESCRIPTION}
    session = DeviceSession.objects.get()
    assert session.status == SessionStatus.STEP_UP_REQUIRED and session.status_reason == "risk:impossible_travel"
    [signal] = signals("impossible_travel")
    assert signal.details["from_city"] == "Paris" and signal.details["to_country"] == "AU"
    assert signal.details["distance_km"] > 16000 and signal.details["speed_kmh"] > 14000
    assert signal.details["action"] == "step_up" and signal.session_id == session.sid
    assert signal.ip_address == net.SYDNEY and signal.user == user
    action = SecurityEvent.objects.get(event_type="risk.action")
    assert action.reason == "step_up" and action.details["signals"] == ["impossible_travel", "new_country"]
    assert SecurityEvent.objects.filter(event_type="session.step_up_required", session_id=session.sid).exists()
    profile = UserRiskProfile.objects.get(user=user)
    assert profile.last_ip == net.SYDNEY and profile.countries == ["FR", "AU"]

    # The refused refresh left the presented token as it was: its next use hits the step-up.
    again = net.refresh(tokens["refresh_token"], client_id, net.SYDNEY)
    assert again.json() == {"error": "invalid_grant", "error_description": STEP_UP_DESCRIPTION}
    assert len(signals("impossible_travel")) == 1

    # The next authorization of this user at this client demands MFA.
    demand = StepUpDemand.objects.open().get()
    assert demand.acr == "urn:vigil:acr:mfa" and demand.client == mobile_client.client
    response = browser.get(reverse("authorize") + "?" + _authorize_query(client_id, pkce))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert query_of(response["Location"])["acr"] == "urn:vigil:acr:mfa"


def follow_to_client(browser: Any, url: str) -> str:
    """Follow the provider's own redirects until one goes back to the app."""
    for _ in range(6):
        url = browser.get(url)["Location"]
        if url.startswith(MOBILE_REDIRECT):
            return url
    raise AssertionError(f"no redirect to the client, last {url}")


def _authorize_query(client_id: str, pkce: Any) -> str:
    from urllib.parse import urlencode

    from idp.tests.conftest import authorize_params

    return urlencode(authorize_params(client_id, pkce))


def test_an_mfa_authorization_clears_the_step_up(clock, browser, mobile_client, pkce, user):
    from accounts.tests.conftest import code_for, confirmed_totp

    client_id = mobile_client.client.client_id
    tokens = sign_in(browser, client_id, pkce, net.PARIS)
    clock.shift(timedelta(hours=1))
    assert net.refresh(tokens["refresh_token"], client_id, net.SYDNEY).status_code == 400

    device = confirmed_totp(user)
    login = browser.get(reverse("authorize") + "?" + _authorize_query(client_id, pkce))
    params = query_of(login["Location"])
    assert params["force"] == "1"  # the risk arose after the last sign-in: sign in again, with MFA
    next_url = params["next"]
    password = browser.post(login["Location"], {"username": user.username, "password": PASSWORD, "next": next_url,
                                                "acr": params["acr"]})
    assert password.status_code == 302 and password["Location"].startswith(reverse("accounts:verify"))
    done = browser.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(device), "next": next_url,
                                                     "acr": "urn:vigil:acr:mfa"})
    assert done.status_code == 302
    code = query_of(follow_to_client(browser, done.url))["code"]
    fresh = net.exchange(code, pkce.verifier, client_id, MOBILE_REDIRECT, net.SYDNEY)

    assert fresh.status_code == 200, fresh.content
    assert not StepUpDemand.objects.open().exists()
    new_session = DeviceSession.objects.get(status=SessionStatus.ACTIVE)
    assert new_session.acr == "urn:vigil:acr:mfa"
    assert SecurityEvent.objects.filter(event_type="risk.step_up_cleared", session_id=new_session.sid).exists()
    follow = browser.get(reverse("authorize") + "?" + _authorize_query(client_id, pkce))
    assert "code" in query_of(follow["Location"])


def test_slow_travel_does_not_fire(clock, browser, mobile_client, pkce):
    client_id = mobile_client.client.client_id
    tokens = sign_in(browser, client_id, pkce, net.PARIS)
    clock.shift(timedelta(hours=22))  # ~16,960 km in 22 h: an airliner's ~770 km/h
    assert DeviceSession.objects.get().last_place == "Paris, FR"
    response = net.refresh(tokens["refresh_token"], client_id, net.SYDNEY)
    assert response.status_code == 200, response.content
    assert not signals("impossible_travel")
    assert DeviceSession.objects.get().last_place == "Sydney, AU"  # the session's last place
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE


def test_a_short_fast_move_is_below_the_distance_floor(clock, browser, mobile_client, pkce):
    client_id = mobile_client.client.client_id
    tokens = sign_in(browser, client_id, pkce, net.PARIS)
    clock.shift(timedelta(minutes=10))  # Paris -> Lyon, ~403 km in 10 minutes
    assert net.refresh(tokens["refresh_token"], client_id, net.LYON).status_code == 200
    assert not signals("impossible_travel")


def test_speed_and_floor_are_settings(clock, browser, mobile_client, pkce, settings):
    settings.SESSIONS_RISK_TRAVEL_MIN_DISTANCE_KM = 300
    client_id = mobile_client.client.client_id
    tokens = sign_in(browser, client_id, pkce, net.PARIS)
    clock.shift(timedelta(minutes=10))
    response = net.refresh(tokens["refresh_token"], client_id, net.LYON)
    assert response.json()["error"] == "invalid_grant"
    assert signals("impossible_travel")[0].details["counted_distance_km"] > 300


def test_private_and_loopback_addresses_are_skipped(clock, browser, mobile_client, pkce, user):
    client_id = mobile_client.client.client_id
    tokens = sign_in(browser, client_id, pkce, net.PARIS)
    for ip in (net.PRIVATE, net.CGNAT, net.LOOPBACK, "::1", "fd00::1"):
        clock.shift(timedelta(minutes=1))
        response = net.refresh(tokens["refresh_token"], client_id, ip)
        assert response.status_code == 200, (ip, response.content)
        tokens = response.json()
    assert UserRiskProfile.objects.get(user=user).last_ip == net.PARIS
    assert not SecurityEvent.objects.filter(event_type="risk.signal").exists()


def test_first_location_sets_the_baseline_and_a_new_country_is_recorded(clock, browser, mobile_client, pkce, user):
    client_id = mobile_client.client.client_id
    tokens = sign_in(browser, client_id, pkce, net.PARIS)
    assert not SecurityEvent.objects.filter(event_type="risk.signal").exists()
    clock.shift(timedelta(hours=3))  # Paris -> Berlin by train or plane: possible, but a new country
    response = net.refresh(tokens["refresh_token"], client_id, net.BERLIN)
    assert response.status_code == 200, response.content
    [signal] = signals("new_country")
    assert signal.details == {"country": "DE", "known_countries": ["FR"], "ip": net.BERLIN, "source": "token:refresh_token",
                              "action": "record", "satisfied_by_mfa": False}
    assert SecurityEvent.objects.get(event_type="risk.action").reason == "record"
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    clock.shift(timedelta(hours=3))
    assert net.refresh(response.json()["refresh_token"], client_id, net.BERLIN).status_code == 200
    assert len(signals("new_country")) == 1


def test_userinfo_is_evaluated_too(clock, browser, mobile_client, pkce):
    client_id = mobile_client.client.client_id
    tokens = sign_in(browser, client_id, pkce, net.PARIS)
    clock.shift(timedelta(minutes=2))
    response = net.userinfo(tokens["access_token"], net.TOKYO)
    assert response.status_code == 401
    assert response.json() == {"error": "insufficient_user_authentication", "error_description": STEP_UP_DESCRIPTION}
    assert response["WWW-Authenticate"] == (
        f'Bearer error="insufficient_user_authentication", error_description="{STEP_UP_DESCRIPTION}", '
        'acr_values="urn:vigil:acr:mfa"'
    )
    assert DeviceSession.objects.get().status == SessionStatus.STEP_UP_REQUIRED
    assert signals("impossible_travel")[0].details["source"] == "resource:userinfo"
    refused = net.refresh(tokens["refresh_token"], client_id, net.TOKYO)
    assert refused.json() == {"error": "invalid_grant", "error_description": STEP_UP_DESCRIPTION}


def test_a_located_quiet_refresh_costs_two_queries_more(clock, browser, mobile_client, pkce, django_assert_max_num_queries):
    """The loopback budget of idp/tests/test_query_budgets.py is 16: locating adds one locked
    read of the user's profile and one update of it."""
    client_id = mobile_client.client.client_id
    tokens = sign_in(browser, client_id, pkce, net.PARIS)
    clock.shift(timedelta(minutes=5))
    with django_assert_max_num_queries(18):
        response = net.refresh(tokens["refresh_token"], client_id, net.PARIS)
    assert response.status_code == 200
