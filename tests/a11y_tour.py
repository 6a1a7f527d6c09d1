"""A walk through every page a person sees, in Debian's headless Chromium against ``live_server``
(issue 16 items 4 and 6): each page is reached for real (password, TOTP enrollment and
verification, a passkey from a CDP virtual authenticator, consent, sign-out, error pages) and,
once there, checked with axe-core and photographed at phone and desktop size.

``PAGES`` names the pages in the order the walk meets them; the screenshots are
``<page>-phone.png`` (412×915) and ``<page>-desktop.png`` (1280×800), full page.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import struct
from base64 import b32decode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from django.conf import settings as django_settings
from django.test import override_settings
from django_otp.oath import totp as oath_totp

from core.outage_testing import closed_port

PAGES = (
    "sign-in", "sign-in-error", "mfa-setup", "totp-enroll", "totp-enroll-error", "recovery-codes", "consent",
    "select-account", "passkey-add", "account", "password-change", "logout-confirm", "logout-app", "signed-out",
    "second-factor", "second-factor-error", "recovery-code", "passkey-error", "error-csrf", "error-503",
    "error-authorize", "error-404",
)
SIZES = {"phone": (412, 915), "desktop": (1280, 800)}


def viewport(size: str) -> dict[str, int]:
    width, height = SIZES[size]
    return {"width": width, "height": height}

AXE_SCRIPT = Path(django_settings.BASE_DIR) / "tests" / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
DOCS_PAGES = Path(django_settings.BASE_DIR) / "docs" / "pages"
ARTIFACTS = Path(os.environ.get("VIGIL_ARTIFACTS_DIR", Path(django_settings.BASE_DIR) / "var" / "artifacts")) / "pages"
#: axe-core impacts that fail the page (the others are printed).
BLOCKING = ("serious", "critical")
PASSWORD = "correct horse battery staple 42"
REDIRECT = "http://127.0.0.1/callback"
APP_PAGE = "<!doctype html><html lang=en><title>App</title><main><h1>Back in the app</h1></main></html>"
# Conditional mediation (passkey autofill) would answer on its own once the virtual
# authenticator holds a passkey; the walk signs in with the button instead.
NO_AUTOFILL = ("if (window.PublicKeyCredential) {"
               " PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false); }")


def screenshot_dir() -> Path:
    """docs/pages/ when asked to regenerate them (``VIGIL_UPDATE_SCREENSHOTS=1``), else artifacts."""
    return DOCS_PAGES if os.environ.get("VIGIL_UPDATE_SCREENSHOTS") == "1" else ARTIFACTS


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (PNG spec §11.2.2)."""
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG")
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@dataclass
class Visit:
    url: str
    violations: list[dict[str, Any]]

    def blocking(self) -> list[str]:
        return [describe(v) for v in self.violations if v["impact"] in BLOCKING]


@dataclass
class Tour:
    visits: dict[str, Visit] = field(default_factory=dict)
    shots: list[Path] = field(default_factory=list)


def describe(violation: dict[str, Any]) -> str:
    targets = ", ".join(str(node["target"]) for node in violation["nodes"][:3])
    return f"{violation['impact']} {violation['id']}: {violation['help']} ({len(violation['nodes'])}× {targets})"


class Walker:
    """One browser context (CSP bypassed so axe can be injected, as in RECIPES-SERVICES §5)
    with a virtual authenticator; ``record(name)`` checks and photographs the current page."""

    def __init__(self, browser: Any, base: str, axe_script: Path, out: Path):
        self.base = base
        self.axe = axe_script.read_text()
        self.out = out
        self.tour = Tour()
        self.context = browser.new_context(base_url=base, bypass_csp=True, viewport=viewport("phone"))
        self.context.add_init_script(NO_AUTOFILL)
        self.context.route(REDIRECT + "*", lambda route: route.fulfill(status=200, content_type="text/html",
                                                                       body=APP_PAGE))
        self.page = self.context.new_page()
        self.page.set_default_timeout(15000)
        self.cdp = self.context.new_cdp_session(self.page)
        self.cdp.send("WebAuthn.enable", {"enableUI": False})
        self.authenticator = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
            "isUserVerified": True, "automaticPresenceSimulation": True}})["authenticatorId"]

    def record(self, name: str) -> None:
        assert name in PAGES and name not in self.tour.visits, name
        self.page.wait_for_load_state()
        self.page.add_script_tag(content=self.axe)
        result = self.page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        self.tour.visits[name] = Visit(self.page.url, result["violations"])
        for size in SIZES:
            self.page.set_viewport_size(viewport(size))
            path = self.out / f"{name}-{size}.png"
            self.page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
            self.tour.shots.append(path)
        self.page.set_viewport_size(viewport("phone"))

    def go(self, path: str) -> None:
        self.page.goto(path)

    def submit_password(self, password: str = PASSWORD) -> None:
        self.page.fill("#id_username", "alice")
        self.page.fill("#id_password", password)
        with self.page.expect_navigation():
            self.page.click("form[data-purpose=login] button[type=submit]")

    def click(self, selector: str) -> None:
        with self.page.expect_navigation():
            self.page.click(selector)

    def close(self) -> None:
        self.context.close()


def authorize_url(client_id: str, scope: str = "openid", **extra: str) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "scope": scope,
              "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8), "code_challenge": challenge,
              "code_challenge_method": "S256", **extra}
    return "/authorize?" + urlencode(params), verifier


def redeem(walker: Walker, client_id: str, verifier: str) -> None:
    """The app's side: the code at the redirect URI becomes tokens (a signed-in app on the account page)."""
    walker.page.wait_for_url(REDIRECT + "*")
    code = parse_qs(urlsplit(walker.page.url).query)["code"][0]
    token = requests.post(f"{walker.base}/token", timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": client_id,
        "code_verifier": verifier})
    assert token.status_code == 200, token.text


def totp_code(secret: str, drift: int = 0) -> str:
    key = b32decode(secret + "=" * (-len(secret) % 8))
    return str(oath_totp(key, drift=drift)).zfill(6)


def walk(walker: Walker, first_party: str, third_party: str) -> str:
    """Sign-in, enrollment, consent and account pages; returns the TOTP secret enrolled."""
    url, verifier = authorize_url(first_party, acr_values="urn:vigil:acr:mfa")
    walker.go(url)
    walker.record("sign-in")
    walker.submit_password("not the password")
    walker.record("sign-in-error")
    walker.submit_password()
    walker.record("mfa-setup")
    walker.click("#setup-totp")
    walker.record("totp-enroll")
    secret = walker.page.inner_text("#totp-secret")
    right = totp_code(secret)
    walker.page.fill("#id_code", f"{(int(right) + 1) % 1_000_000:06d}")
    walker.click("form:has(#id_code) button[type=submit]")
    walker.record("totp-enroll-error")
    walker.page.fill("#id_code", totp_code(secret))
    walker.click("form:has(#id_code) button[type=submit]")
    walker.record("recovery-codes")
    walker.page.click("#continue")
    redeem(walker, first_party, verifier)

    url, verifier = authorize_url(third_party, "openid profile email offline_access photos.read")
    walker.go(url)
    walker.record("consent")
    walker.page.click("button[value=allow]")
    redeem(walker, third_party, verifier)

    walker.go(authorize_url(first_party, prompt="select_account")[0])
    walker.record("select-account")
    walker.go("/accounts/passkeys/add/")
    walker.record("passkey-add")
    walker.click("#passkey-create")
    walker.go("/accounts/")
    walker.record("account")
    walker.go("/accounts/password/")
    walker.record("password-change")
    return secret


def walk_out_and_back(walker: Walker, first_party: str, secret: str) -> None:
    """Sign-out pages, the second factor (TOTP, recovery code, a passkey that fails), error pages."""
    walker.go("/accounts/logout/")
    walker.record("logout-confirm")
    walker.go("/logout?" + urlencode({"client_id": first_party}))
    walker.record("logout-app")
    walker.click("main button[name=confirm]")
    walker.record("signed-out")

    walker.go("/accounts/login/?next=/accounts/")
    walker.submit_password()
    walker.record("second-factor")
    walker.page.fill("#id_totp_code", "000000" if totp_code(secret, 1) != "000000" else "111111")
    walker.click("form:has(#id_totp_code) button[type=submit]")
    walker.record("second-factor-error")
    walker.page.click("details summary")
    walker.record("recovery-code")
    walker.page.fill("#id_totp_code", totp_code(secret, 1))
    walker.click("form:has(#id_totp_code) button[type=submit]")
    assert urlsplit(walker.page.url).path == "/accounts/", walker.page.url
    walker.go("/accounts/logout/")
    walker.click("main form[method=post] button[type=submit]")

    walker.cdp.send("WebAuthn.clearCredentials", {"authenticatorId": walker.authenticator})
    walker.go("/accounts/login/?next=/accounts/")
    walker.page.click("#passkey-login")
    walker.page.locator("[data-passkey-error]").wait_for(state="visible")
    walker.record("passkey-error")
    walk_errors(walker, first_party)


def walk_errors(walker: Walker, first_party: str) -> None:
    walker.go("/accounts/login/")
    walker.page.evaluate("document.querySelector('input[name=csrfmiddlewaretoken]').value = 'x'.repeat(64)")
    walker.submit_password()
    walker.record("error-csrf")
    walker.go("/accounts/login/")
    with override_settings(CACHES={"default": {"BACKEND": "core.cache.RedisCache",
                                               "LOCATION": f"redis://127.0.0.1:{closed_port()}/0"}}):
        walker.submit_password()
    walker.record("error-503")
    walker.go("/authorize?" + urlencode({"client_id": "no-such-app", "response_type": "code"}))
    walker.record("error-authorize")
    walker.go("/no-such-page/")
    walker.record("error-404")
