"""Per-client branding and the tenant theme (issue 16, item 1): logos checked by content and
size, re-encoded and served from our origin; "Sign in to <App>" with its logo on the
sign-in, second-factor, consent and error pages, escaped like any text; https-only links."""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.management import CommandError, call_command
from django.test import Client as BrowserClient
from django.urls import reverse
from PIL import Image

from clients.flows.branding import set_logo
from clients.flows.registration import Brand, ClientRegistrationError, register_client
from clients.logo import LogoError, read_logo, sniff
from clients.models import Client, ClientLogo

REDIRECT = "com.example.app:/cb"


def image_bytes(kind: str, size: tuple[int, int] = (64, 40), **save: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=kind, **save)
    return out.getvalue()


def make_client(**brand: Any) -> Client:
    return register_client(name="Shop", public=True, redirect_uris=[REDIRECT], client_id="shop",
                           scopes=["openid", "profile", "orders.read"], brand=Brand(**brand)).client


def authorize_next(client_id: str = "shop", **extra: str) -> str:
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "scope": "openid",
             "code_challenge": "x" * 43, "code_challenge_method": "S256", **extra}
    return f"{reverse('authorize')}?{urlencode(query)}"


# --- the logo check ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["PNG", "JPEG", "WEBP"])
def test_png_jpeg_and_webp_are_accepted_and_stored_as_png(kind: str) -> None:
    logo = read_logo(image_bytes(kind, (1000, 500)))
    stored = Image.open(io.BytesIO(logo.data))
    assert stored.format == "PNG" and max(stored.size) == 256  # scaled to fit 256 px
    assert sniff(logo.data) == "PNG" and len(logo.sha256) == 64


def test_metadata_and_appended_bytes_are_not_kept() -> None:
    exif = Image.Exif()
    exif[0x010E] = "GPS-secret-description"
    polyglot = image_bytes("JPEG", exif=exif.tobytes()) + b"<script>alert(1)</script>"
    logo = read_logo(polyglot)
    assert b"GPS-secret" not in logo.data and b"<script>" not in logo.data


@pytest.mark.parametrize("data", [
    b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
    b"GIF89a" + b"\x00" * 40,
    b"<html><script>alert(1)</script></html>",
    b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10,  # the signature alone is not enough
    b"",
])
def test_anything_but_a_decodable_image_is_refused(data: bytes) -> None:
    with pytest.raises(LogoError):
        read_logo(data)


def test_a_logo_over_the_size_limit_is_refused(settings: Any) -> None:
    settings.IDP_CLIENT_LOGO_MAX_BYTES = 1000
    with pytest.raises(LogoError, match="larger than"):
        read_logo(image_bytes("PNG", (400, 400), compress_level=0))


def test_an_image_too_many_pixels_wide_is_refused() -> None:
    with pytest.raises(LogoError, match="at most"):
        read_logo(image_bytes("PNG", (5000, 10)))


# --- serving ------------------------------------------------------------------------------
def test_logo_is_served_from_our_origin_as_png_with_nosniff(client: BrowserClient, db: Any) -> None:
    shop = make_client()
    set_logo(shop, image_bytes("WEBP"))
    response = client.get(reverse("branding-client-logo", args=["shop"]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert response.content == bytes(ClientLogo.objects.get(client=shop).image)


def test_no_logo_and_inactive_clients_are_404(client: BrowserClient, db: Any) -> None:
    shop = make_client()
    assert client.get(reverse("branding-client-logo", args=["shop"])).status_code == 404
    set_logo(shop, image_bytes("PNG"))
    Client.objects.filter(pk=shop.pk).update(is_active=False)
    assert client.get(reverse("branding-client-logo", args=["shop"])).status_code == 404


# --- the pages ----------------------------------------------------------------------------
def test_sign_in_page_names_the_app_with_its_logo_and_links(client: BrowserClient, db: Any) -> None:
    shop = make_client(display_name="Acme Shop", privacy_policy_url="https://shop.example/privacy",
                       terms_url="https://shop.example/terms")
    set_logo(shop, image_bytes("PNG"))
    page = client.get(reverse("accounts:login"), {"next": authorize_next()})
    body = page.content.decode()
    assert "<h1>Sign in to Acme Shop</h1>" in body
    assert f'src="{reverse("branding-client-logo", args=["shop"])}?v=' in body
    assert 'href="https://shop.example/privacy"' in body and 'href="https://shop.example/terms"' in body
    csp = page["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "img-src 'self'" in csp


def test_a_display_name_with_markup_is_shown_as_text(client: BrowserClient, db: Any) -> None:
    make_client(display_name='<script>alert("x")</script>')
    body = client.get(reverse("accounts:login"), {"next": authorize_next()}).content.decode()
    assert '<script>alert("x")</script>' not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body


def test_unknown_or_inactive_clients_show_no_brand(client: BrowserClient, db: Any) -> None:
    shop = make_client(display_name="Acme Shop")
    assert "Acme Shop" not in client.get(reverse("accounts:login"), {"next": authorize_next("other")}).content.decode()
    Client.objects.filter(pk=shop.pk).update(is_active=False)
    assert "Acme Shop" not in client.get(reverse("accounts:login"), {"next": authorize_next()}).content.decode()
    # a next that leaves our origin is not read
    assert "Acme Shop" not in client.get(
        reverse("accounts:login"), {"next": "https://evil.example" + authorize_next()}).content.decode()


def test_error_page_of_a_known_client_names_it(client: BrowserClient, db: Any) -> None:
    make_client(display_name="Acme Shop")
    page = client.get(authorize_next(redirect_uri="https://evil.example/cb"))
    assert page.status_code == 400
    body = page.content.decode()
    assert "Sign in to <strong>Acme Shop</strong>" in body and "Go back to Acme Shop" in body


def test_second_factor_page_names_the_app(client: BrowserClient, django_user_model: Any, db: Any) -> None:
    from accounts.models import SealedTOTPDevice

    make_client(display_name="Acme Shop")
    user = django_user_model.objects.create_user(username="bob", password="long enough password 1")
    device = SealedTOTPDevice.create_sealed(user, "app")
    device.confirmed = True
    device.save()
    client.post(reverse("accounts:login"), {"username": "bob", "password": "long enough password 1",
                                            "next": authorize_next(), "acr": "urn:vigil:acr:mfa"})
    page = client.get(reverse("accounts:verify"), {"next": authorize_next(), "acr": "urn:vigil:acr:mfa"})
    assert page.status_code == 200 and "Sign in to <strong>Acme Shop</strong>" in page.content.decode()


def test_tenant_theme_from_settings(client: BrowserClient, settings: Any, tmp_path: Any, db: Any) -> None:
    logo = tmp_path / "tenant.jpg"
    logo.write_bytes(image_bytes("JPEG"))
    settings.IDP_THEME_NAME = "Example Corp ID"
    settings.IDP_THEME_LOGO = str(logo)
    settings.IDP_THEME_ACCENT_COLOR = "#0b5d1e"
    body = client.get(reverse("accounts:login")).content.decode()
    assert "<title>Sign in · Example Corp ID</title>" in body and "--accent: #0b5d1e;" in body
    assert f'src="{reverse("branding-tenant-logo")}?v=' in body
    served = client.get(reverse("branding-tenant-logo"))
    assert served["Content-Type"] == "image/png" and served.content.startswith(b"\x89PNG")


def test_a_colour_that_is_not_hex_never_reaches_the_style(client: BrowserClient, settings: Any, db: Any) -> None:
    from clients.checks import check_theme_colors

    settings.IDP_THEME_ACCENT_COLOR = "red;}</style><script>alert(1)</script>"
    assert [e.id for e in check_theme_colors()] == ["clients.E002"]
    body = client.get(reverse("accounts:login")).content.decode()
    assert "alert(1)" not in body and "--accent: #1d4ed8;" in body
    settings.IDP_THEME_ACCENT_COLOR = "#ffff00"  # white text on yellow: unreadable
    assert [e.id for e in check_theme_colors()] == ["clients.E002"]


def test_a_theme_logo_that_is_not_an_image_fails_the_check(settings: Any, tmp_path: Any) -> None:
    from clients.checks import check_theme_logo

    bad = tmp_path / "logo.png"
    bad.write_text("<svg/>")
    settings.IDP_THEME_LOGO = str(bad)
    assert [e.id for e in check_theme_logo()] == ["clients.E001"]
    settings.IDP_THEME_LOGO = str(tmp_path / "missing.png")
    assert [e.id for e in check_theme_logo()] == ["clients.E001"]


# --- registration: create_client and the admin ----------------------------------------------
def test_create_client_sets_the_brand(tmp_path: Any, db: Any) -> None:
    logo = tmp_path / "logo.webp"
    logo.write_bytes(image_bytes("WEBP"))
    call_command("create_client", "--name", "Shop", "--public", "--redirect-uri", REDIRECT, "--client-id", "shop",
                 "--display-name", "Acme Shop", "--logo", str(logo), "--privacy-policy-url", "https://shop.example/p",
                 "--terms-url", "https://shop.example/t", "--scope", "openid orders.read",
                 "--scope-description", "orders.read=See your orders", stdout=io.StringIO())
    shop = Client.objects.get(client_id="shop")
    assert (shop.display_name, shop.privacy_policy_url, shop.terms_url) == (
        "Acme Shop", "https://shop.example/p", "https://shop.example/t")
    assert shop.scope_descriptions == {"orders.read": "See your orders"}
    assert ClientLogo.objects.filter(client=shop).exists()


@pytest.mark.parametrize("args, message", [
    (["--privacy-policy-url", "http://shop.example/p"], "https URL"),
    (["--terms-url", "javascript:alert(1)"], "https URL"),
    (["--scope-description", "payments.write=Pay"], "not one of this client's scopes"),
])
def test_create_client_refuses_bad_brand_and_registers_nothing(args: list[str], message: str, db: Any) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("create_client", "--name", "Shop", "--public", "--redirect-uri", REDIRECT, *args,
                     stdout=io.StringIO())
    assert not Client.objects.exists()


def test_create_client_refuses_a_logo_that_is_not_an_image(tmp_path: Any, db: Any) -> None:
    fake = tmp_path / "logo.png"
    fake.write_bytes(b"<html><script>alert(1)</script></html>")
    with pytest.raises(CommandError, match="PNG, JPEG or WebP"):
        call_command("create_client", "--name", "Shop", "--public", "--redirect-uri", REDIRECT, "--logo", str(fake),
                     stdout=io.StringIO())
    assert not Client.objects.exists() and not ClientLogo.objects.exists()


def test_registration_refuses_plain_http_links(db: Any) -> None:
    with pytest.raises(ClientRegistrationError):
        make_client(privacy_policy_url="http://shop.example/privacy")


def _admin_form(client: Client, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "client_id": client.client_id, "name": client.name, "client_type": client.client_type,
        "auth_methods": ["none"], "jwks": "{}", "redirect_uris": f'["{REDIRECT}"]', "post_logout_redirect_uris": "[]",
        "allowed_scopes": '["openid", "orders.read"]', "grant_types": '["authorization_code"]',
        "allowed_audiences": "[]", "served_resources": "[]", "require_pkce": "on", "signing_alg": client.signing_alg,
        "is_active": "on", "created_at_0": "2026-01-01", "created_at_1": "00:00:00", "scope_descriptions": "{}",
        "display_name": "", "privacy_policy_url": "", "terms_url": "", "profile": client.profile,
        "request_uris": "[]",
    }
    data.update(changes)
    return data


def test_admin_uploads_a_logo(admin_client: BrowserClient, db: Any) -> None:
    shop = make_client()
    url = reverse("admin:clients_client_change", args=[shop.pk])
    upload = io.BytesIO(image_bytes("JPEG"))
    upload.name = "logo.jpg"
    response = admin_client.post(url, _admin_form(shop, logo_file=upload, display_name="Acme Shop"))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert ClientLogo.objects.filter(client=shop).exists()
    assert Client.objects.get(pk=shop.pk).display_name == "Acme Shop"


@pytest.mark.parametrize("name, data, message", [
    ("logo.png", b"<svg onload=alert(1)>", "PNG, JPEG or WebP"),
    ("logo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 300_000, "larger than"),
])
def test_admin_refuses_a_bad_logo_and_changes_nothing(
    admin_client: BrowserClient, name: str, data: bytes, message: str, db: Any
) -> None:
    shop = make_client()
    upload = io.BytesIO(data)
    upload.name = name
    response = admin_client.post(reverse("admin:clients_client_change", args=[shop.pk]),
                                 _admin_form(shop, logo_file=upload, display_name="Changed"))
    assert response.status_code == 200 and message in response.content.decode()
    assert not ClientLogo.objects.exists() and Client.objects.get(pk=shop.pk).display_name == ""


def test_admin_refuses_http_links_and_undeclared_scope_descriptions(admin_client: BrowserClient, db: Any) -> None:
    shop = make_client()
    response = admin_client.post(reverse("admin:clients_client_change", args=[shop.pk]), _admin_form(
        shop, privacy_policy_url="http://shop.example/p", scope_descriptions='{"payments.write": "Pay"}'))
    body = response.content.decode()
    assert response.status_code == 200 and "Enter an https URL" in body and "not one of this client" in body
    assert Client.objects.get(pk=shop.pk).privacy_policy_url == ""


def test_second_factor_set_up_pages_name_the_app_through_the_sign_in_next(
    client: BrowserClient, django_user_model: Any, db: Any
) -> None:
    make_client(display_name="Acme Shop")
    django_user_model.objects.create_user(username="bob", password="long enough password 1")
    client.post(reverse("accounts:login"), {"username": "bob", "password": "long enough password 1"})
    back_to_login = reverse("accounts:login") + "?" + urlencode({"next": authorize_next()})
    page = client.get(reverse("accounts:mfa_setup"), {"next": back_to_login})
    assert page.status_code == 200 and "Sign in to <strong>Acme Shop</strong>" in page.content.decode()


def test_pages_load_nothing_from_another_origin(client: BrowserClient, db: Any) -> None:
    """No external fonts, scripts, styles or images: only our own paths (and the client's https
    links, which are navigation, not loads)."""
    make_client(display_name="Acme Shop", privacy_policy_url="https://shop.example/privacy")
    body = client.get(reverse("accounts:login"), {"next": authorize_next()}).content.decode()
    loads = re.findall(r'<(?:script|img|link|iframe|source)\b[^>]*\b(?:src|href)="([^"]*)"', body)
    assert loads and all(url.startswith("/") and not url.startswith("//") for url in loads), loads
    assert "@import" not in body and "url(" not in body
