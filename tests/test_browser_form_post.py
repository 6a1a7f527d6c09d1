"""response_mode=form_post in Debian's headless Chromium: the page's one inline script runs
under its strict Content-Security-Policy (allowed by hash, no 'unsafe-inline') and the form
reaches the relying party; without JavaScript the <noscript> button does; and a script the
CSP does not pin is blocked (so it is the hash, not a loose policy, that lets ours run)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import requests

from accounts.tests import test_browser
from accounts.tests.conftest import PASSWORD
from clients.flows.registration import register_client

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

chromium = test_browser.browser  # the passkey tests' fixture: Debian's Chromium, launched once per module


class RelyingParty:
    """A relying party's callback on 127.0.0.1 that records what is POSTed to it."""

    def __init__(self) -> None:
        received: list[dict[str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                received.append(dict(parse_qsl(body)))
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(b"<!doctype html><title>RP</title><p id=rp>received</p>")

            def log_message(self, *args: Any) -> None:
                return None

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.callback = f"http://127.0.0.1:{self.server.server_address[1]}/cb"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for_post(self, seconds: float = 10) -> dict[str, str] | None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.received:
            time.sleep(0.05)
        return self.received[0] if self.received else None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rp() -> Iterator[RelyingParty]:
    party = RelyingParty()
    yield party
    party.stop()


@pytest.fixture
def setup(live_server: Any, settings: Any, django_user_model: Any) -> dict[str, Any]:
    settings.IDP_ISSUER = live_server.url
    user = django_user_model(username="alice", email="alice@example.com")
    user.set_password(PASSWORD)
    user.save()
    registered = register_client(name="Form post RP", public=True, redirect_uris=["http://127.0.0.1/cb"],
                                 first_party=True)
    return {"issuer": live_server.url, "client_id": registered.client.client_id, "user": user}


def _authorize_url(setup: dict[str, Any], rp: RelyingParty) -> tuple[str, dict[str, str], str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": "code", "client_id": setup["client_id"], "redirect_uri": rp.callback,
              "scope": "openid", "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
              "code_challenge": challenge, "code_challenge_method": "S256", "response_mode": "form_post"}
    return f"{setup['issuer']}/authorize?{urlencode(params)}", params, verifier


def _sign_in(page: Any) -> None:
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def test_form_post_submits_itself_under_the_csp(chromium: Any, setup: dict[str, Any], rp: RelyingParty) -> None:
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(15000)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    url, params, verifier = _authorize_url(setup, rp)
    page.goto(url)
    _sign_in(page)
    posted = rp.wait_for_post()
    assert posted is not None, console
    page.wait_for_selector("#rp")
    assert page.url == rp.callback
    assert posted["state"] == params["state"] and posted["iss"] == setup["issuer"] and posted["code"]
    assert not [m for m in console if "Content Security Policy" in m], console
    token = requests.post(f"{setup['issuer']}/token", timeout=10, data={
        "grant_type": "authorization_code", "code": posted["code"], "redirect_uri": rp.callback,
        "client_id": setup["client_id"], "code_verifier": verifier})
    assert token.status_code == 200 and token.json()["id_token"]
    context.close()


def test_form_post_without_javascript_uses_the_noscript_button(chromium: Any, setup: dict[str, Any],
                                                               rp: RelyingParty) -> None:
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(15000)
    url, params, _ = _authorize_url(setup, rp)
    page.goto(url)
    _sign_in(page)
    button = "#vigil-form-post button[type=submit]"  # Playwright's text= engine skips <noscript>
    page.wait_for_selector(button)
    assert page.inner_text(button) == "Continue to the app"
    assert rp.received == []  # nothing posted by itself
    page.click(button)
    posted = rp.wait_for_post()
    assert posted is not None and posted["state"] == params["state"] and posted["code"]
    context.close()


def test_a_script_the_csp_does_not_pin_is_blocked(chromium: Any, setup: dict[str, Any], rp: RelyingParty) -> None:
    """Change one character of the inline script on the way: the hash no longer matches, so
    Chromium refuses to run it and nothing is posted. Our script runs only because of its hash."""
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(15000)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))

    def tamper(route: Any) -> None:
        response = route.fetch(max_redirects=0)
        body = response.text()
        if 'id="vigil-form-post"' in body:
            body = body.replace(".submit();", ".submit() ;")
        route.fulfill(response=response, body=body)

    page.goto(f"{setup['issuer']}/accounts/login/")
    _sign_in(page)
    page.wait_for_load_state()
    page.route("**/authorize?*", tamper)  # a direct answer: routes do not see followed redirects
    url, _, _ = _authorize_url(setup, rp)
    page.goto(url)
    page.wait_for_selector("#vigil-form-post", state="attached")
    assert rp.wait_for_post(seconds=2) is None
    assert any("Content Security Policy" in m for m in console), console
    context.close()
