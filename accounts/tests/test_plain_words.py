"""The account and consent pages in plain words (issue 16, item 2): sign-in methods and
strength in words, browsers and devices by name (ua-parser), places by city and country
(GeoLite2, in the page's language), times in the person's zone with the zone named, and
scopes described (standard ones built in, a client's own ones by that client)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts import plain
from accounts.models import BrowserSession
from accounts.tests.conftest import login_password
from clients.flows.registration import Brand, register_client
from core.acr import ACR_MFA, ACR_PASSWORD, ACR_PHISHING_RESISTANT
from idp.scopes import describe_scopes

PIXEL = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.6367.113 Mobile Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.4 Mobile/15E148 Safari/604.1")
LONDON = "81.2.69.160"  # GeoLite2: Willesden, United Kingdom


def visible_text(html: str) -> str:
    """The page's text as a person reads it (no tags, no attribute values)."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


@pytest.mark.parametrize("acr, words", [
    (ACR_PASSWORD, "Basic: a password only"),
    (ACR_MFA, "Strong: two steps"),
    (ACR_PHISHING_RESISTANT, "Strongest: a passkey, which cannot be phished"),
    ("urn:other", "Unknown"),
])
def test_sign_in_strength_in_words(acr: str, words: str) -> None:
    assert plain.strength(acr) == words


def test_methods_in_words_without_mfa() -> None:
    assert plain.methods(["hwk", "mfa", "pwd", "user"]) == [
        "password", "passkey kept on one device", "fingerprint, face or device PIN"]
    assert plain.methods(["mfa", "otp", "pwd"]) == ["password", "code from an authenticator app or a recovery code"]
    with translation.override("de"):
        assert plain.strength(ACR_MFA) == "Stark: zwei Schritte" and plain.methods(["swk"]) == ["synchronisierter Passkey"]


@pytest.mark.parametrize("agent, words", [
    (PIXEL, "Chrome Mobile 124 on Android 14 · Google Pixel 8"),
    (IPHONE, "Mobile Safari 17 on iOS 17 · Apple iPhone"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
     "Safari/537.36", "Chrome 126 on Windows 10"),
    ("curl/8.5.0", "curl 8"),
    ("", "Unknown browser"),
    ("\x00garbage", "Unknown browser"),
])
def test_browsers_are_named(agent: str, words: str) -> None:
    assert plain.describe_user_agent(agent) == words


def test_places_by_city_and_country_in_the_page_language() -> None:
    assert plain.place(LONDON) == "Willesden, United Kingdom"
    with translation.override("de"):
        assert plain.place(LONDON) == "Willesden, Vereinigtes Königreich"
    with translation.override("es"):
        assert plain.place(LONDON) == "Willesden, Reino Unido"
    assert plain.place("10.0.0.1") == "" and plain.place(None) == "" and plain.place("nonsense") == ""


@pytest.fixture
def signed_in_from_london(client: Client, user: Any, settings: Any) -> Client:
    settings.VIGIL_TRUSTED_PROXY_HOPS = "0"
    client.defaults.update(REMOTE_ADDR=LONDON, HTTP_USER_AGENT=PIXEL)
    assert login_password(client).status_code == 302
    return client


def test_account_page_reads_in_words(signed_in_from_london: Client) -> None:
    page = signed_in_from_london.get(reverse("accounts:profile"))
    text = visible_text(page.content.decode())
    assert "How you signed in Password" in text and "Sign-in strength Basic: a password only" in text
    assert "Chrome Mobile 124 on Android 14 · Google Pixel 8" in text
    assert "Near Willesden, United Kingdom" in text
    assert "urn:vigil" not in text and "pwd" not in text and "Mozilla/5.0" not in text
    assert "(UTC)" in text and "Times are shown in your time zone (UTC)" in text


def test_times_follow_the_browser_zone(signed_in_from_london: Client) -> None:
    row = BrowserSession.objects.get()
    BrowserSession.objects.filter(pk=row.pk).update(last_auth_at=datetime(2026, 7, 1, 12, 0, tzinfo=UTC))
    signed_in_from_london.cookies[settings.VIGIL_TIME_ZONE_COOKIE_NAME] = "Asia/Tokyo"
    body = signed_in_from_london.get(reverse("accounts:profile")).content.decode()
    assert '<time datetime="2026-07-01T21:00:00+09:00" data-local>' in body and "(Asia/Tokyo)" in body
    signed_in_from_london.cookies[settings.VIGIL_TIME_ZONE_COOKIE_NAME] = "Not/AZone"  # unknown: the server's zone, named
    body = signed_in_from_london.get(reverse("accounts:profile")).content.decode()
    assert '<time datetime="2026-07-01T12:00:00+00:00" data-local>' in body and "(UTC)" in body


def test_account_page_in_spanish_names_the_place_in_spanish(signed_in_from_london: Client) -> None:
    signed_in_from_london.cookies[settings.LANGUAGE_COOKIE_NAME] = "es"
    text = visible_text(signed_in_from_london.get(reverse("accounts:profile")).content.decode())
    assert "Cerca de Willesden, Reino Unido" in text and "Básica: solo una contraseña" in text


# --- scopes -----------------------------------------------------------------------------------
@pytest.fixture
def shop(db: Any) -> Any:
    return register_client(
        name="Shop", public=True, redirect_uris=["com.example.app:/cb"], client_id="shop",
        scopes=["openid", "offline_access", "orders.read", "cart.write"],
        brand=Brand(scope_descriptions={"orders.read": "See your orders", "orders.read@de": "Ihre Bestellungen sehen"}),
    ).client


def test_custom_scopes_use_the_client_description_per_language(shop: Any) -> None:
    views = describe_scopes("openid orders.read cart.write", shop)
    assert [v.description for v in views] == ["Sign you in with your account", "See your orders", "Access “cart.write”"]
    with translation.override("de"):
        views = describe_scopes("openid orders.read", shop)
        assert [v.description for v in views] == ["Sie mit Ihrem Konto anmelden", "Ihre Bestellungen sehen"]
    with translation.override("es"):  # no Spanish text from the client: its plain one
        assert describe_scopes("orders.read", shop)[0].description == "See your orders"


def test_consent_page_lists_what_the_app_may_do(client: Client, user: Any, shop: Any) -> None:
    login_password(client)
    query = {"response_type": "code", "client_id": "shop", "redirect_uri": "com.example.app:/cb",
             "scope": "openid offline_access orders.read", "code_challenge": "x" * 43, "code_challenge_method": "S256"}
    page = client.get(f"{reverse('authorize')}?{urlencode(query)}")
    text = visible_text(page.content.decode())
    assert "Shop wants to access your account" in text
    assert "Stay signed in while you are not using it" in text and "See your orders (defined by Shop)" in text
    assert "offline_access" not in text and "orders.read" not in text
