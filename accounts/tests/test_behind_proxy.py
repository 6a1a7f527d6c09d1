"""Behind a trusted proxy the security events and the account page show the client's address."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import BrowserSession
from accounts.tests.conftest import login_password
from core.models import SecurityEvent

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.5"
CLIENT = "31.39.1.1"


def test_events_and_the_account_page_use_the_forwarded_client_address(user: Any, settings: Any) -> None:
    settings.VIGIL_TRUSTED_PROXIES = [PROXY]
    browser = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"6.6.6.6, {CLIENT}")
    assert login_password(browser).status_code == 302
    event = SecurityEvent.objects.get(event_type="login.password", outcome="success")
    assert event.ip_address == CLIENT
    assert BrowserSession.objects.get(user=user).ip_address == CLIENT
    page = browser.get(reverse("accounts:profile")).content.decode()
    assert CLIENT in page and PROXY not in page and "6.6.6.6" not in page


def test_without_trust_the_peer_address_is_shown(user: Any, settings: Any) -> None:
    settings.VIGIL_TRUSTED_PROXIES = []
    browser = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=CLIENT)
    login_password(browser)
    assert SecurityEvent.objects.get(event_type="login.password").ip_address == PROXY
    assert BrowserSession.objects.get(user=user).ip_address == PROXY
