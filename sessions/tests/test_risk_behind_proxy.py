"""Risk evaluation behind a TLS proxy: the engine sees the client address the trusted proxy
forwarded (core/client_address.py), never the proxy's own or one the client wrote."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse

from core.models import SecurityEvent
from idp.tests.conftest import get_code
from risk import testing as net
from sessions.models import DeviceSession, SessionStatus
from sessions.tests import test_risk_travel

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.5"
MOBILE_REDIRECT = test_risk_travel.MOBILE_REDIRECT
clock = test_risk_travel.clock  # the frozen clock, fixture


def _sign_in_then_refresh(browser: Any, client_id: str, pkce: Any, clock: Any, first: str, then: str) -> Any:
    code, _ = get_code(browser, client_id, pkce)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": MOBILE_REDIRECT,
            "client_id": client_id, "code_verifier": pkce.verifier}
    tokens = net.form_post(reverse("token"), data, PROXY, HTTP_X_FORWARDED_FOR=first)
    assert tokens.status_code == 200, tokens.content
    clock.shift(timedelta(hours=1))
    data = {"grant_type": "refresh_token", "refresh_token": tokens.json()["refresh_token"], "client_id": client_id}
    return net.form_post(reverse("token"), data, PROXY, HTTP_X_FORWARDED_FOR=then)


def test_impossible_travel_fires_behind_a_trusted_proxy(clock, browser, mobile_client, pkce, user, settings):
    """Reproduction (issue 12): behind the proxy every request had the proxy's address, so
    impossible travel never fired."""
    settings.VIGIL_TRUSTED_PROXIES = ["10.0.0.0/8"]
    # The client in Sydney wrote "Paris" itself; the proxy appended the address it saw.
    refused = _sign_in_then_refresh(browser, mobile_client.client.client_id, pkce, clock,
                                    net.PARIS, f"{net.PARIS}, {net.SYDNEY}")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    signal = SecurityEvent.objects.get(event_type="risk.signal", reason="impossible_travel")
    assert signal.ip_address == net.SYDNEY and signal.details["from_ip"] == net.PARIS
    assert DeviceSession.objects.get().status == SessionStatus.STEP_UP_REQUIRED


def test_forwarded_addresses_from_an_untrusted_peer_are_not_believed(clock, browser, mobile_client, pkce, user,
                                                                     settings):
    settings.VIGIL_TRUSTED_PROXIES = []
    response = _sign_in_then_refresh(browser, mobile_client.client.client_id, pkce, clock, net.PARIS, net.SYDNEY)
    assert response.status_code == 200
    assert not SecurityEvent.objects.filter(event_type="risk.signal")
    assert set(SecurityEvent.objects.exclude(ip_address=None).values_list("ip_address", flat=True)) <= {PROXY,
                                                                                                        "127.0.0.1"}
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
