"""Sign-in with the keyboard only, and what a screen reader is told (issue 16 item 4), in
Debian's headless Chromium against ``live_server``.

- Password + TOTP and passkey sign-in are completed with Tab, Enter and Space only (text is
  typed into whichever field has focus); every stop on the way shows a focus indicator
  (``:focus-visible`` with an outline or a box shadow).
- On each page of those flows every control Chromium exposes to assistive technology (its
  accessibility tree, over CDP) has a name, the page has ``<html lang>``, one ``h1``, a
  ``main`` and a ``banner`` landmark; errors are ``role="alert"`` (announced) and linked to
  the field or button they are about (``aria-describedby``, ``aria-invalid``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from accounts.tests.conftest import PASSWORD, code_for, confirmed_totp, make_user, user  # noqa: F401 - fixtures
from accounts.tests.test_browser import browser as chromium  # noqa: F401 - Debian's Chromium, once per module
from accounts.tests.test_browser import webauthn_live  # noqa: F401 - the live server as the passkeys' origin

from .a11y_tour import NO_AUTOFILL

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAMED_ROLES = frozenset({"textbox", "button", "link", "checkbox", "radio", "combobox", "searchbox", "spinbutton",
                         "switch", "tab", "menuitem", "DisclosureTriangle"})
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) { return null; }
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
  return {id: el.id, tag: el.tagName.toLowerCase(), type: el.getAttribute("type") || "",
          text: (el.innerText || "").trim(), inMain: !!el.closest("main"),
          purpose: (el.form && el.form.dataset.purpose) || "",
          ring: el.matches(":focus-visible") && (outline || style.boxShadow !== "none")};
}"""


class Keyboard:
    """A page driven by keys; ``cdp`` reads Chromium's accessibility tree."""

    def __init__(self, browser: Any, base: str, passkeys: bool = False):
        self.context = browser.new_context(base_url=base)
        self.context.add_init_script(NO_AUTOFILL)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15000)
        self.cdp = self.context.new_cdp_session(self.page)
        self.authenticator = ""
        if passkeys:
            self.cdp.send("WebAuthn.enable", {"enableUI": False})
            self.authenticator = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
                "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
                "isUserVerified": True, "automaticPresenceSimulation": True}})["authenticatorId"]

    def focused(self) -> dict[str, Any]:
        info = self.page.evaluate(FOCUSED)
        assert info is not None, f"nothing has focus on {self.page.url}"
        return dict(info)

    def tab_to(self, wanted: Callable[[dict[str, Any]], bool], limit: int = 12) -> dict[str, Any]:
        """Press Tab until ``wanted`` holds for the focused element; each stop must show focus."""
        for _ in range(limit):
            self.page.keyboard.press("Tab")
            info = self.focused()
            assert info["ring"], f"no visible focus indicator on {info} at {self.page.url}"
            if wanted(info):
                return info
        raise AssertionError(f"Tab never reached the wanted element on {self.page.url}")

    def tab_to_id(self, element_id: str) -> dict[str, Any]:
        return self.tab_to(lambda info: info["id"] == element_id)

    def press(self, key: str, path: str | None = None) -> None:
        """``key`` (Enter or Space) on the focused element; with ``path``, wait for that page."""
        if path is None:
            self.page.keyboard.press(key)
            return
        with self.page.expect_navigation(url=re.compile(rf"^[^?]*{re.escape(path)}(\?.*)?$")):
            self.page.keyboard.press(key)

    def unnamed_controls(self) -> list[str]:
        nodes = self.cdp.send("Accessibility.getFullAXTree")["nodes"]
        return [f"{n['role']['value']} {n.get('backendDOMNodeId')}" for n in nodes
                if not n.get("ignored") and n.get("role", {}).get("value") in NAMED_ROLES
                and not str(n.get("name", {}).get("value", "")).strip()]

    def assert_readable(self) -> None:
        """What a screen reader needs from any page of the flow."""
        page = self.page
        assert page.evaluate("document.documentElement.lang"), "no <html lang>"
        assert page.locator("h1").count() == 1, "one h1 per page"
        assert page.get_by_role("main").count() == 1 and page.get_by_role("banner").count() == 1, "landmarks"
        assert page.title().strip()
        assert self.unnamed_controls() == [], page.url
        for field in page.locator("input:not([type=hidden]), select, textarea").all():
            if field.is_visible():  # a <label for> (or aria-label) names it, not only a placeholder
                assert field.evaluate("el => el.labels.length > 0 || el.hasAttribute('aria-label')"), field
    def assert_error_linked(self, target: Any, message: str) -> None:
        """An error is announced (``role="alert"``) and read with what it is about."""
        alert = self.page.get_by_role("alert").filter(has_text=message)
        expect(alert).to_be_visible()
        expect(target).to_have_accessible_description(re.compile(re.escape(message)))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def keyboard(chromium: Any, webauthn_live: str) -> Iterator[Keyboard]:  # noqa: F811
    driver = Keyboard(chromium, webauthn_live, passkeys=True)
    yield driver
    driver.close()


def _wrong_code(device: Any) -> str:
    valid = {code_for(device, step) for step in (-2, -1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c not in valid)


def test_password_and_totp_with_the_keyboard_only(keyboard: Keyboard, user: Any) -> None:
    device = confirmed_totp(user)
    page = keyboard.page
    page.goto("/accounts/login/?next=/accounts/")
    keyboard.assert_readable()
    expect(page.locator("#id_username")).to_be_focused()  # autofocus
    assert keyboard.focused()["ring"]
    page.keyboard.type("alice")
    keyboard.tab_to_id("id_password")
    page.keyboard.type("not the password")
    keyboard.tab_to(lambda info: info["type"] == "submit" and info["purpose"] == "login")  # "Sign in"
    keyboard.press("Enter", path="/accounts/login/")

    keyboard.assert_readable()
    message = page.get_by_role("alert").first.inner_text()
    for field in ("#id_username", "#id_password"):
        keyboard.assert_error_linked(page.locator(field), message)
        expect(page.locator(field)).to_have_attribute("aria-invalid", "true")
    keyboard.tab_to_id("id_password")  # the username was kept; focus starts on it (autofocus)
    page.keyboard.type(PASSWORD)
    keyboard.press("Enter", path="/accounts/login/verify/")

    keyboard.assert_readable()
    keyboard.tab_to_id("id_totp_code")
    page.keyboard.type(_wrong_code(device))
    keyboard.press("Enter", path="/accounts/login/verify/")
    keyboard.assert_readable()
    keyboard.assert_error_linked(page.locator("#id_totp_code"), page.get_by_role("alert").first.inner_text())
    keyboard.tab_to_id("id_totp_code")
    page.keyboard.type(code_for(device))
    keyboard.press("Enter", path="/accounts/")
    assert page.get_attribute("#amr", "data-amr") == "mfa otp pwd"


def _sign_in_with_password(keyboard: Keyboard) -> None:
    keyboard.page.goto("/accounts/login/")
    # Chromium applies autofocus after load: a key pressed before that goes nowhere ("lice")
    expect(keyboard.page.locator("#id_username")).to_be_focused()
    keyboard.page.keyboard.type("alice")
    keyboard.tab_to_id("id_password")
    keyboard.page.keyboard.type(PASSWORD)
    keyboard.press("Enter", path="/accounts/")


def _sign_out(keyboard: Keyboard) -> None:
    keyboard.page.goto("/accounts/logout/")
    keyboard.tab_to(lambda info: info["type"] == "submit" and info["inMain"])  # "Sign out"
    keyboard.press("Enter", path="/accounts/logout/")


def test_passkey_creation_and_sign_in_with_the_keyboard_only(keyboard: Keyboard, user: Any) -> None:
    page = keyboard.page
    _sign_in_with_password(keyboard)
    page.goto("/accounts/passkeys/add/")
    keyboard.assert_readable()
    keyboard.tab_to(lambda info: info["id"] == "passkey-create")
    keyboard.press("Space", path="/accounts/mfa/recovery/new/")  # a first second factor: codes shown once
    keyboard.assert_readable()
    keyboard.tab_to_id("continue")
    keyboard.press("Enter", path="/accounts/")
    _sign_out(keyboard)

    page.goto("/accounts/login/?next=/accounts/")
    keyboard.assert_readable()
    expect(page.locator("#passkey-login")).to_be_visible()
    keyboard.tab_to_id("passkey-login")
    keyboard.press("Space", path="/accounts/")
    assert page.get_attribute("#amr", "data-amr") == "hwk mfa user"


def test_a_passkey_that_fails_is_announced_and_linked(keyboard: Keyboard, user: Any) -> None:
    """No passkey on the authenticator: the error is an alert and describes the button."""
    page = keyboard.page
    page.goto("/accounts/login/?next=/accounts/")
    keyboard.tab_to_id("passkey-login")
    keyboard.press("Enter")
    alert = page.locator("[data-passkey-error]")
    alert.wait_for(state="visible")
    assert alert.get_attribute("role") == "alert"
    keyboard.assert_error_linked(page.locator("#passkey-login"), alert.inner_text())
    keyboard.assert_readable()
    assert "/accounts/login/" in page.url
