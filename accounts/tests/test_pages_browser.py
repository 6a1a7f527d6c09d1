"""The pages on a phone, in Debian's headless Chromium (issue 16, items 2 and 3): touch
targets of at least 44×44 CSS px and one column at 412×915, no sideways scrolling at 200 %
zoom, the TOTP page's tappable otpauth:// link and copy button, times redrawn in the
browser's zone, and passkey autofill that stays silent when it ends without a choice while
a host that is not the RP ID gets a message an operator can act on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from accounts.tests.conftest import PASSWORD
from accounts.tests.test_browser import LAUNCH_ARGS
from clients.flows.registration import register_client

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 412, "height": 915}
ZOOMED = {"width": 206, "height": 457}  # the same phone at 200 % zoom: half the CSS pixels
TARGETS = ("button, input:not([type=hidden]), select, summary, a.button, a.action")
#: Records how each navigator.credentials.get() ended, so a test can tell "silent" from "never ran".
RECORD_GETS = """
(() => {
  window.__gets = [];
  if (!navigator.credentials) { return; }
  const original = navigator.credentials.get.bind(navigator.credentials);
  navigator.credentials.get = (options) => original(options).then(
    (c) => { window.__gets.push((options.mediation || "button") + ":ok"); return c; },
    (e) => { window.__gets.push((options.mediation || "button") + ":" + e.name); throw e; });
})();
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=LAUNCH_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def live(live_server: Any, settings: Any) -> str:
    settings.ACCOUNTS_WEBAUTHN_RP_ID = "localhost"
    settings.ACCOUNTS_WEBAUTHN_ALLOWED_ORIGINS = [live_server.url]
    return str(live_server.url)


def new_page(chromium: Any, base: str, viewport: dict[str, int] = PHONE, **options: Any) -> Any:
    context = chromium.new_context(base_url=base, viewport=viewport, is_mobile=True, has_touch=True, **options)
    page = context.new_page()
    page.set_default_timeout(15000)
    return page


def sign_in(page: Any, username: str = "alice") -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")


def small_targets(page: Any) -> list[str]:
    small = []
    for element in page.locator(TARGETS).all():
        if not element.is_visible():
            continue
        box = element.bounding_box()
        if box and (box["width"] < 43.5 or box["height"] < 43.5):
            small.append(f"{element.evaluate('e => e.outerHTML.slice(0, 80)')} {box['width']:.0f}x{box['height']:.0f}")
    return small


def overflows(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1"))


def consent_url() -> str:
    register_client(name="Shop", public=True, redirect_uris=["com.example.app:/cb"], client_id="shop",
                    scopes=["openid", "profile", "offline_access"])
    query = {"response_type": "code", "client_id": "shop", "redirect_uri": "com.example.app:/cb",
             "scope": "openid profile offline_access", "code_challenge": "x" * 43, "code_challenge_method": "S256"}
    return "/authorize?" + urlencode(query)


def test_touch_targets_and_one_column_on_a_phone(chromium: Any, live: str, user: Any, make_passkey: Any) -> None:
    consent = consent_url()
    page = new_page(chromium, live)
    page.goto("/accounts/login/")
    pages = {"login": (small_targets(page), overflows(page))}
    sign_in(page)
    make_passkey(user, name="Work phone")  # listed on the account page with its own buttons
    for name, path in [("account", "/accounts/"), ("logout", "/accounts/logout/"), ("totp", "/accounts/mfa/totp/"),
                       ("consent", consent), ("password", "/accounts/password/"), ("mfa", "/accounts/mfa/"),
                       ("error", "/authorize?client_id=nobody")]:
        page.goto(path)
        assert page.locator("h1").count() == 1, name
        pages[name] = (small_targets(page), overflows(page))
    assert {name: found for name, found in pages.items() if found != ([], False)} == {}
    page.context.close()


def test_readable_at_200_percent_zoom(chromium: Any, live: str, user: Any) -> None:
    consent = consent_url()
    page = new_page(chromium, live, viewport=ZOOMED)
    page.goto("/accounts/login/")
    assert not overflows(page)
    sign_in(page)
    for path in ["/accounts/", "/accounts/logout/", "/accounts/mfa/totp/", consent]:
        page.goto(path)
        assert not overflows(page), path
    page.context.close()


def test_logout_confirmation_can_be_cancelled(chromium: Any, live: str, user: Any) -> None:
    page = new_page(chromium, live)
    sign_in(page)
    page.goto("/accounts/logout/")
    with page.expect_navigation():
        page.click("#logout-cancel")
    assert page.url.endswith("/accounts/") and page.locator("#amr").count() == 1  # still signed in


def test_totp_page_offers_a_link_and_a_working_copy_button(chromium: Any, live: str, user: Any) -> None:
    page = new_page(chromium, live, permissions=["clipboard-read", "clipboard-write"])
    sign_in(page)
    page.goto("/accounts/mfa/totp/")
    secret = page.inner_text("#totp-secret")
    link = page.get_attribute("#totp-link", "href") or ""
    assert link.startswith("otpauth://totp/") and f"secret={secret}" in link
    page.click("#totp-copy")
    page.wait_for_function("() => document.querySelector('[data-copy-status]').textContent.length > 0")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    assert page.inner_text("[data-copy-status]") == "Key copied."


@pytest.mark.parametrize("cookie", ["vigil_tz", "__Host-vigil_tz"])  # http's name, https's (core.cookies)
def test_times_are_redrawn_in_the_browser_zone_and_kept_for_the_server(
    chromium: Any, live: str, user: Any, settings: Any, cookie: str
) -> None:
    """The script writes the zone under the name the page gives it (a __Host- name Secure, as
    browsers require; Chromium takes Secure cookies from http://localhost)."""
    settings.VIGIL_TIME_ZONE_COOKIE_NAME = cookie
    page = new_page(chromium, live, timezone_id="Asia/Tokyo", locale="en-US")
    sign_in(page)
    # As if never reported (host-only, Path=/; Secure, as its prefix requires, for the __Host- name)
    page.context.add_cookies([{"name": cookie, "value": "UTC", "domain": "localhost", "path": "/",
                               "secure": cookie != "vigil_tz"}])
    page.goto("/accounts/")
    assert page.get_attribute("html", "data-time-zone") == "UTC"  # the server's rendering, named
    page.wait_for_function("() => document.querySelector('time[data-local]').dataset.zone === 'Asia/Tokyo'")
    assert "GMT+9" in page.locator("time[data-local]").first.inner_text()
    page.reload()  # the script reported the zone: the server now renders in it, and says so
    assert page.get_attribute("html", "data-time-zone") == "Asia/Tokyo"
    assert "Times are shown in your time zone (Asia/Tokyo)." in page.content()
    assert page.locator("time[data-local][data-zone]").count() == 0  # nothing left to redraw
    written = {c["name"]: c for c in page.context.cookies()}
    assert written[cookie]["value"] == "Asia/Tokyo" and written[cookie]["path"] == "/"
    assert not ({"vigil_tz", "__Host-vigil_tz"} - {cookie}) & set(written)  # under its name only


def _autofill_page(chromium: Any, base: str) -> Any:
    page = new_page(chromium, base)
    page.add_init_script(RECORD_GETS)
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})  # and no credential in it
    return page


def test_autofill_that_ends_without_a_choice_shows_nothing(chromium: Any, live: str, user: Any) -> None:
    page = _autofill_page(chromium, live)
    page.goto("/accounts/login/")
    page.wait_for_function("() => window.__gets.length > 0 || !window.PublicKeyCredential", timeout=15000)
    page.wait_for_timeout(500)
    assert page.evaluate("window.__gets")[0].startswith("conditional:")
    assert page.locator("[data-passkey-error]").is_hidden()


def test_a_host_that_is_not_the_rp_id_gets_an_actionable_message(chromium: Any, live: str, user: Any) -> None:
    wrong_host = live.replace("localhost", "127.0.0.1")
    page = _autofill_page(chromium, wrong_host)
    page.goto("/accounts/login/")
    page.wait_for_function("() => window.__gets.length > 0", timeout=15000)
    assert page.evaluate("window.__gets") == ["conditional:SecurityError"]
    assert page.locator("[data-passkey-error]").is_hidden()  # nobody asked for a passkey yet: silent
    page.click("#passkey-login")
    error = page.locator("[data-passkey-error]")
    error.wait_for(state="visible")
    assert error.get_attribute("data-error-name") == "SecurityError"
    assert f"Open this page at {live} and try again." in error.inner_text()
