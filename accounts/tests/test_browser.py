"""Real passkeys in Debian's headless Chromium with a CDP virtual authenticator
(ctap2, internal transport, resident keys, user verification), against ``live_server``.

Screenshots of every page visited are saved under ``$VIGIL_ARTIFACTS_DIR`` (default
``var/artifacts/browser``).
"""

from __future__ import annotations

import os
from base64 import b32decode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django_otp.oath import totp as oath_totp

from accounts.models import Passkey
from accounts.tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(os.environ.get("VIGIL_ARTIFACTS_DIR", Path(django_settings.BASE_DIR) / "var" / "artifacts" / "browser"))
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=LAUNCH_ARGS)
        yield instance
        instance.close()


class Session:
    """A browser context with a virtual authenticator, and helpers for Vigil's pages."""

    def __init__(self, browser: Any, base_url: str, name: str):
        self.context = browser.new_context(base_url=base_url)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15000)
        self.cdp = self.context.new_cdp_session(self.page)
        self.cdp.send("WebAuthn.enable", {"enableUI": False})
        self.authenticator = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
            "isUserVerified": True, "automaticPresenceSimulation": True}})["authenticatorId"]
        self.name = name
        self.shots = 0
        self.context.add_init_script(
            "if (window.PublicKeyCredential && !sessionStorage.getItem('vigil-autofill')) {"
            " PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false); }"
        )

    def shot(self, label: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{self.shots:02d}-{label}.png"), full_page=True)

    def credentials(self) -> list[dict[str, Any]]:
        return self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})["credentials"]

    def enable_autofill(self) -> None:
        """Conditional mediation is hidden by default (it would answer before the test clicks)."""
        self.page.evaluate("sessionStorage.setItem('vigil-autofill', '1')")

    def clear_credentials(self) -> None:
        self.cdp.send("WebAuthn.clearCredentials", {"authenticatorId": self.authenticator})

    def password_login(self, username: str = "alice", path: str = "/accounts/login/") -> None:
        self.page.goto(path)
        self.shot("login")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state()

    def sign_out(self) -> None:
        self.page.goto("/accounts/logout/")
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/accounts/logout/")

    def register_passkey(self, name: str = "Virtual key") -> None:
        self.page.goto("/accounts/passkeys/add/")
        self.shot("passkey-add")
        self.page.fill("#id_name", name)
        with self.page.expect_navigation():
            self.page.click("#passkey-create")
        self.shot("after-passkey-add")

    def amr(self) -> str:
        self.page.goto("/accounts/")
        self.shot("account")
        return str(self.page.get_attribute("#amr", "data-amr"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def webauthn_live(live_server: Any, settings: Any) -> str:
    settings.ACCOUNTS_WEBAUTHN_RP_ID = "localhost"
    settings.ACCOUNTS_WEBAUTHN_ALLOWED_ORIGINS = [live_server.url]
    return str(live_server.url)


@pytest.fixture
def session(browser: Any, webauthn_live: str, request: pytest.FixtureRequest) -> Iterator[Session]:
    s = Session(browser, webauthn_live, request.node.name)
    yield s
    s.close()


def test_register_passkey_then_passwordless_login_with_the_button(session: Session, user: Any) -> None:
    session.password_login()
    assert session.amr() == "pwd"
    session.register_passkey()
    # first second factor: recovery codes are shown once
    assert session.page.locator("#recovery-codes li").count() == 10
    session.page.click("#continue")

    passkey = Passkey.objects.get(user=user)
    assert passkey.name == "Virtual key" and passkey.backup_eligible is False
    assert passkey.transports == ["internal"] and passkey.amr_key == "hwk"
    creds = session.credentials()
    assert len(creds) == 1 and creds[0]["rpId"] == "localhost" and creds[0]["isResidentCredential"]

    session.sign_out()
    session.page.goto("/accounts/login/?next=/accounts/")
    session.shot("login-passkey")
    with session.page.expect_navigation(url="**/accounts/"):
        session.page.click("#passkey-login")
    assert session.amr() == "hwk mfa user"
    assert session.page.get_attribute("#acr", "data-acr") == "urn:vigil:acr:phishing-resistant"
    passkey.refresh_from_db()
    assert passkey.last_used_at is not None and passkey.sign_count >= 1
    assert session.credentials()[0]["signCount"] == passkey.sign_count


def test_passwordless_login_through_autofill(session: Session, user: Any) -> None:
    """Conditional mediation: the login page asks for a passkey as soon as it loads; the
    virtual authenticator (automatic presence) answers as if the user picked it from autofill."""
    session.password_login()
    session.register_passkey()
    session.sign_out()
    session.enable_autofill()
    session.page.goto("/accounts/login/?next=/accounts/")
    # The autofill sign-in may finish while goto() is still settling: wait for the URL itself,
    # which also holds if the navigation already happened (no race with expect_navigation).
    session.page.wait_for_url(lambda url: url.split("?")[0].endswith("/accounts/"), timeout=30000)
    assert session.amr() == "hwk mfa user"


def test_passkey_as_second_factor(session: Session, user: Any) -> None:
    session.password_login()
    session.register_passkey()
    session.sign_out()

    session.password_login(path="/accounts/login/?next=/accounts/")
    assert "/accounts/login/verify/" in session.page.url
    session.shot("verify")
    with session.page.expect_navigation(url="**/accounts/"):
        session.page.click("#passkey-verify")
    assert session.amr() == "hwk mfa pwd user"


def test_step_up_to_phishing_resistant(session: Session, user: Any) -> None:
    session.password_login()
    session.register_passkey()  # registration alone proves nothing: the session stays pwd
    session.page.goto("/accounts/login/?next=/accounts/&acr=urn:vigil:acr:phishing-resistant")
    assert "/accounts/login/verify/" in session.page.url
    session.shot("step-up")
    with session.page.expect_navigation(url="**/accounts/"):
        session.page.click("#passkey-verify")
    assert session.amr() == "hwk mfa pwd user"
    assert session.page.get_attribute("#acr", "data-acr") == "urn:vigil:acr:phishing-resistant"


def test_removed_credentials_make_login_fail(session: Session, user: Any) -> None:
    session.password_login()
    session.register_passkey()
    session.sign_out()
    session.clear_credentials()
    assert session.credentials() == []

    session.page.goto("/accounts/login/?next=/accounts/")
    session.page.click("#passkey-login")
    error = session.page.locator("[data-passkey-error]")
    error.wait_for(state="visible")
    session.shot("login-failed")
    assert error.get_attribute("data-error-name") == "NotAllowedError"  # the person's own click: told
    assert "could not be used" in error.inner_text()
    assert "/accounts/login/" in session.page.url
    session.page.goto("/accounts/")
    assert "/accounts/login/" in session.page.url  # still signed out


def test_password_and_totp_with_codes_from_the_enrolled_secret(session: Session, user: Any) -> None:
    session.password_login()
    session.page.goto("/accounts/mfa/totp/")
    session.shot("totp-enroll")
    assert session.page.locator("figure.qr svg").count() == 1
    secret = session.page.inner_text("#totp-secret")
    key = b32decode(secret + "=" * (-len(secret) % 8))
    session.page.fill("#id_code", str(oath_totp(key)).zfill(6))
    session.page.click("button[type=submit]")
    session.page.wait_for_load_state()
    session.shot("recovery-codes")
    assert session.page.locator("#recovery-codes li").count() == 10
    session.page.click("#continue")
    session.sign_out()

    session.password_login(path="/accounts/login/?next=/accounts/")
    assert "/accounts/login/verify/" in session.page.url
    session.shot("verify-totp")
    # the code just used cannot be replayed: the next time step's code (within tolerance) works
    session.page.fill("#id_totp_code", str(oath_totp(key, drift=1)).zfill(6))
    with session.page.expect_navigation(url="**/accounts/"):
        session.page.click("form button[type=submit]")
    assert session.amr() == "mfa otp pwd"


def test_a_double_clicked_confirmation_still_shows_the_codes(session: Session, user: Any) -> None:
    """The page sends the form once (pages.js ``data-submit-once``): a second click would send a
    second answer that renews the session under the first's feet. A repeat that does reach the
    server (a retry, no scripts) is the same confirmation (test_totp_enroll.py)."""
    from accounts.models import SealedTOTPDevice
    from core.models import SecurityEvent

    session.password_login()
    session.page.goto("/accounts/mfa/totp/")
    secret = session.page.inner_text("#totp-secret")
    session.page.fill("#id_code", str(oath_totp(b32decode(secret + "=" * (-len(secret) % 8)))).zfill(6))
    session.page.dblclick("button[type=submit]")
    session.page.wait_for_url("**/accounts/mfa/recovery/new/**", timeout=10_000)  # not the error, not sign-in
    session.page.wait_for_load_state()
    assert session.page.locator("#recovery-codes li").count() == 10
    assert list(SealedTOTPDevice.objects.filter(user=user).values_list("confirmed", flat=True)) == [True]
    assert not SecurityEvent.objects.filter(event_type="factor.totp.enroll").exists()  # no failure recorded


def test_a_double_clicked_regeneration_shows_the_codes_it_stored(session: Session, user: Any) -> None:
    """The page sends the form once (pages.js ``data-submit-once``); a repeat that does reach the
    server finds the set its form names replaced and changes nothing (test_recovery_regenerate.py),
    so the codes shown are the ones stored."""
    from django_otp.plugins.otp_static.models import StaticToken

    from accounts.flows import recovery
    from core.models import SecurityEvent

    session.password_login()
    session.page.goto("/accounts/mfa/totp/")
    secret = session.page.inner_text("#totp-secret")
    session.page.fill("#id_code", str(oath_totp(b32decode(secret + "=" * (-len(secret) % 8)))).zfill(6))
    session.page.click("button[type=submit]")
    session.page.wait_for_url("**/accounts/mfa/recovery/new/**")
    first = session.page.locator("#recovery-codes li").all_inner_texts()
    session.page.click("#continue")
    session.page.wait_for_url("**/accounts/")

    session.page.dblclick("#recovery-regenerate button[type=submit]")
    session.page.wait_for_url("**/accounts/mfa/recovery/new/**", timeout=10_000)
    session.page.wait_for_load_state()
    session.shot("regenerated-codes")
    shown = session.page.locator("#recovery-codes li").all_inner_texts()
    assert len(shown) == 10 and set(shown).isdisjoint(first)
    stored = sorted(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert stored == sorted(recovery._hash(code) for code in shown)  # the codes shown are the ones stored
    regenerated = SecurityEvent.objects.filter(event_type="factor.recovery_codes.generated", reason="regenerated")
    assert regenerated.count() == 1


# --- end to end: an OIDC authorization asking for an acr, ID token checked ------------------
REDIRECT = "http://127.0.0.1/callback"


def _authorize_in_browser(session: Session, base_url: str, acr: str, sign_in: Any) -> dict[str, Any]:
    """Run code + PKCE through the browser; ``sign_in`` completes the login pages."""
    import base64
    import hashlib
    import secrets
    from urllib.parse import parse_qs, urlencode, urlsplit

    import jwt
    import requests

    from clients.flows.registration import register_client

    app = register_client(name="Phone app", public=True, redirect_uris=[REDIRECT], first_party=True)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": "code", "client_id": app.client.client_id, "redirect_uri": REDIRECT,
              "scope": "openid", "state": "st-1", "nonce": "n-1", "code_challenge": challenge,
              "code_challenge_method": "S256", "acr_values": acr}
    # the app's redirect is not served: catch the browser's request to it (the code arrives there)
    with session.page.expect_request(lambda r: r.url.startswith(REDIRECT)) as redirect:
        session.page.goto("/authorize?" + urlencode(params))
        sign_in()
    query = {k: v[0] for k, v in parse_qs(urlsplit(redirect.value.url).query).items()}
    assert query.get("state") == "st-1" and "code" in query, query
    token = requests.post(f"{base_url}/token", data={
        "grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT,
        "client_id": app.client.client_id, "code_verifier": verifier}, timeout=10)
    assert token.status_code == 200, token.text
    id_token = token.json()["id_token"]
    key = jwt.PyJWKClient(f"{base_url}/jwks.json").get_signing_key_from_jwt(id_token)
    return jwt.decode(id_token, key.key, algorithms=["ES256", "RS256", "EdDSA"], audience=app.client.client_id,
                      options={"verify_iss": False})


def test_oidc_authorization_phishing_resistant_with_a_passkey(session: Session, user: Any, webauthn_live: str) -> None:
    session.password_login()
    session.register_passkey()
    session.sign_out()

    def sign_in() -> None:
        assert "/accounts/login/" in session.page.url
        session.shot("authorize-login")
        session.page.click("#passkey-login")

    claims = _authorize_in_browser(session, webauthn_live, "urn:vigil:acr:phishing-resistant", sign_in)
    assert claims["acr"] == "urn:vigil:acr:phishing-resistant"
    assert claims["amr"] == ["hwk", "mfa", "user"]
    assert claims["nonce"] == "n-1" and claims["sub"] == str(user.subject)


def test_oidc_authorization_mfa_with_password_and_totp(session: Session, user: Any, webauthn_live: str) -> None:
    from accounts.tests.conftest import code_for, confirmed_totp

    device = confirmed_totp(user)

    def sign_in() -> None:
        session.page.fill("#id_username", "alice")
        session.page.fill("#id_password", PASSWORD)
        session.page.click("button[type=submit]")
        session.page.wait_for_url("**/accounts/login/verify/**")
        session.shot("authorize-verify")
        session.page.fill("#id_totp_code", code_for(device))
        session.page.click("form button[type=submit]")

    claims = _authorize_in_browser(session, webauthn_live, "urn:vigil:acr:mfa", sign_in)
    assert claims["acr"] == "urn:vigil:acr:mfa"
    assert claims["amr"] == ["mfa", "otp", "pwd"]
