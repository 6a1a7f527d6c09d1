"""The pages' language (issue 16, item 5): ``ui_locales`` of the authorization request
(OIDC Core §3.1.2.1) first, then the browser's Accept-Language; the switcher on every page
(Django's ``set_language``: CSRF-protected, back to a same-origin page only) wins over both.
The page says its language in ``<html lang>``."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from clients.flows.registration import register_client

REDIRECT = "com.example.app:/cb"


@pytest.fixture
def app(db: Any) -> Any:
    return register_client(name="Shop", public=True, redirect_uris=[REDIRECT], client_id="shop").client


def authorize(**extra: str) -> str:
    query = {"response_type": "code", "client_id": "shop", "redirect_uri": REDIRECT, "scope": "openid",
             "code_challenge": "x" * 43, "code_challenge_method": "S256", **extra}
    return f"{reverse('authorize')}?{urlencode(query)}"


def login_page(client: Client, url: str, **headers: str) -> str:
    """Follow the authorize redirect to the sign-in page and return it."""
    response = client.get(url, headers=headers)
    assert response.status_code == 302
    page = client.get(response["Location"], headers=headers)
    assert page.status_code == 200
    return page.content.decode()


@pytest.mark.parametrize("ui_locales, lang, heading", [
    ("de", "de", "<h1>Bei Shop anmelden</h1>"),
    ("es-MX en", "es", "<h1>Iniciar sesión en Shop</h1>"),
    ("fr de", "de", "<h1>Bei Shop anmelden</h1>"),  # the first one we have
    ("fr", "en", "<h1>Sign in to Shop</h1>"),
])
def test_ui_locales_picks_the_sign_in_page_language(client: Client, app: Any, ui_locales: str, lang: str,
                                                    heading: str) -> None:
    body = login_page(client, authorize(ui_locales=ui_locales))
    assert f'<html lang="{lang}" ' in body and heading in body


def test_ui_locales_beats_the_browser_language(client: Client, app: Any) -> None:
    body = login_page(client, authorize(ui_locales="es"), **{"accept-language": "de-DE,de;q=0.9"})
    assert '<html lang="es" ' in body and "Contraseña" in body


def test_without_ui_locales_the_browser_language_is_used(client: Client, app: Any) -> None:
    page = client.get(reverse("accounts:login"), headers={"accept-language": "de-CH,de;q=0.9,en;q=0.5"})
    body = page.content.decode()
    assert '<html lang="de" ' in body and "Passwort" in body and page["Content-Language"] == "de"
    assert "Accept-Language" in page["Vary"]


def test_the_switcher_changes_the_language_and_wins(client: Client, app: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    page = client.get(reverse("accounts:login"))
    token = page.cookies[settings.CSRF_COOKIE_NAME].value
    back = reverse("accounts:login") + "?" + urlencode({"next": authorize(ui_locales="de")})
    switched = client.post(reverse("set_language"), {"language": "es", "next": back, "csrfmiddlewaretoken": token})
    assert switched.status_code == 302 and switched["Location"] == back
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "es"
    body = client.get(back).content.decode()
    assert '<html lang="es" ' in body and "Iniciar sesión en Shop" in body  # ui_locales=de lost to the choice


def test_the_switcher_needs_csrf_and_stays_on_our_origin(app: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    refused = client.post(reverse("set_language"), {"language": "de", "next": "/accounts/"})
    assert refused.status_code == 403 and settings.LANGUAGE_COOKIE_NAME not in client.cookies
    token = client.get(reverse("accounts:login")).cookies[settings.CSRF_COOKIE_NAME].value
    offsite = client.post(reverse("set_language"), {"language": "de", "next": "https://evil.example/",
                                                    "csrfmiddlewaretoken": token})
    assert offsite.status_code == 302 and offsite["Location"] == "/"


def test_every_page_offers_the_switcher(client: Client, app: Any) -> None:
    body = client.get(reverse("accounts:login")).content.decode()
    assert f'action="{reverse("set_language")}"' in body
    assert '<option value="de" lang="de">Deutsch</option>' in body and 'lang="es">Español</option>' in body


def test_consent_page_in_german(client: Client, app: Any, django_user_model: Any) -> None:
    from accounts.tests.conftest import PASSWORD

    django_user_model.objects.create_user(username="alice", password=PASSWORD)
    client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    body = client.get(authorize(ui_locales="de", scope="openid profile offline_access")).content.decode()
    assert "Shop möchte auf Ihr Konto zugreifen" in body
    assert "Ihren Namen und Benutzernamen sehen" in body and "Erlauben" in body and "Ablehnen" in body


def test_throttle_message_is_translated() -> None:
    from django.utils import translation

    from accounts.flows.attempts import throttled_message

    with translation.override("es"):
        assert throttled_message(30) == "Demasiados intentos. Vuelva a intentarlo dentro de 30 segundos."
    with translation.override("de"):
        assert throttled_message(1) == "Zu viele Versuche. Versuchen Sie es in 1 Sekunde erneut."


def test_discovery_advertises_the_pages_languages(client: Client, db: Any) -> None:
    """OIDC Discovery 1.0 §3 ``ui_locales_supported``: each one really renders the pages."""
    advertised = client.get("/.well-known/openid-configuration").json()["ui_locales_supported"]
    assert advertised == ["en", "de", "es"]
    words = {"en": "Password", "de": "Passwort", "es": "Contraseña"}
    for code in advertised:
        body = client.get(reverse("accounts:login"), headers={"accept-language": code}).content.decode()
        assert f'<html lang="{code}" ' in body and f">{words[code]}</label>" in body


def test_json_endpoints_do_not_vary_by_language(client: Client, db: Any) -> None:
    response = client.get("/.well-known/openid-configuration", headers={"accept-language": "de"})
    assert "Accept-Language" not in response.get("Vary", "") and "Content-Language" not in response


def test_after_a_failed_sign_in_the_switcher_keeps_the_request(client: Client, app: Any) -> None:
    nxt = authorize(ui_locales="de")
    page = client.post(reverse("accounts:login"), {"username": "nobody", "password": "wrong", "next": nxt})
    assert page.status_code == 400
    switcher = page.content.decode().split(f'action="{reverse("set_language")}"')[1]
    back = html.unescape(re.search(r'name="next" value="([^"]*)"', switcher).group(1))  # type: ignore[union-attr]
    path, _, query = back.partition("?")
    assert path == reverse("accounts:login") and parse_qs(query)["next"] == [nxt]
