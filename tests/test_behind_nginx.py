"""Vigil behind a real nginx (Debian's package) in front of gunicorn (``gunicorn.conf.py``):
the client address, risk, throttling and slow clients as a deployment sees them
(issue 12; docs/operations.md "Proxies").

The test plays two kinds of client. Through a trusted outer proxy (a CDN or load balancer
at 127.0.0.1, listed in ``VIGIL_TRUSTED_PROXIES`` with nginx) it sends ``X-Forwarded-For``
with a public address the GeoLite2 database knows, as a real client's address would arrive.
From 127.0.0.2 it is an untrusted client on the internet: whatever it writes in the header
is not believed, and nginx appends its real address.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from requests.adapters import HTTPAdapter

from accounts.models import BrowserSession
from clients.flows.registration import register_client
from core.models import SecurityEvent
from idp.tests.conftest import make_pkce
from risk import testing as net
from risk.errors import STEP_UP_DESCRIPTION
from tests import live_stack
from tests.conftest import BrowserAgent

pytestmark = [pytest.mark.nginx, pytest.mark.postgres, pytest.mark.redis, pytest.mark.live]

PASSWORD = "correct horse battery staple"
REDIRECT = "com.example.app:/oauth2redirect"
ATTACKER = "198.51.100.7"
VICTIM = "203.0.113.20"
UNTRUSTED_CLIENT = "127.0.0.2"


@contextmanager
def stack(workdir: Path, *gunicorn_args: str) -> Iterator[str]:
    """nginx in front of gunicorn; yields nginx's base URL (the issuer)."""
    port = live_stack.free_port()
    issuer = f"http://localhost:{port}"
    with ExitStack() as running:
        app = running.enter_context(live_stack.gunicorn(
            workdir, issuer, *gunicorn_args, VIGIL_TRUSTED_PROXIES="127.0.0.1"))
        running.enter_context(live_stack.nginx(workdir, app.port, port))
        yield issuer


class FromAddress(HTTPAdapter):
    """Connections from another loopback address (an untrusted client)."""

    def __init__(self, source: str):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def session(forwarded_for: str | None = None, source: str | None = None) -> requests.Session:
    http = requests.Session()
    if forwarded_for:
        http.headers["X-Forwarded-For"] = forwarded_for
    if source:
        http.mount("http://", FromAddress(source))
    return http


def login(http: requests.Session, base: str, username: str, password: str) -> requests.Response:
    page = http.get(f"{base}/accounts/login/", timeout=10)
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert found is not None
    token = found.group(1)
    return http.post(f"{base}/accounts/login/", data={"csrfmiddlewaretoken": token, "username": username,
                                                       "password": password},
                     allow_redirects=False, timeout=10, headers={"Referer": page.url})


@pytest.fixture
def alice(django_user_model: Any, transactional_db: Any) -> Any:
    return django_user_model.objects.create_user(username="alice", password=PASSWORD)


def test_impossible_travel_fires_through_nginx(tmp_path: Path, alice: Any) -> None:
    client_id = register_client(name="Mobile", public=True, redirect_uris=[REDIRECT], first_party=True).client.client_id
    with stack(tmp_path) as base:
        agent = BrowserAgent(base)
        agent.http.headers["X-Forwarded-For"] = net.PARIS
        pkce = make_pkce()
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
                  "scope": "openid offline_access", "state": "s1", "code_challenge": pkce.challenge,
                  "code_challenge_method": "S256"}
        location = agent.follow_to_client(f"{base}/authorize?{urlencode(params)}", REDIRECT, "alice", PASSWORD)
        found = re.search(r"[?&]code=([^&]+)", location)
        assert found is not None
        code = found.group(1)
        tokens = agent.http.post(f"{base}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": client_id,
            "code_verifier": pkce.verifier}, timeout=10)
        assert tokens.status_code == 200, tokens.text
        # Minutes later, from Sydney; the client also writes "Paris" itself, which nobody believes.
        refused = requests.post(f"{base}/token", headers={"X-Forwarded-For": f"{net.PARIS}, {net.SYDNEY}"}, data={
            "grant_type": "refresh_token", "refresh_token": tokens.json()["refresh_token"], "client_id": client_id},
            timeout=10)
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_grant", "error_description": STEP_UP_DESCRIPTION}
    signal = SecurityEvent.objects.get(event_type="risk.signal", reason="impossible_travel")
    assert signal.ip_address == net.SYDNEY and signal.details["from_ip"] == net.PARIS
    assert signal.details["from_city"] == "Paris" and signal.details["to_country"] == "AU"
    assert SecurityEvent.objects.get(event_type="login.password", outcome="success").ip_address == net.PARIS
    assert BrowserSession.objects.get(user=alice).ip_address == net.PARIS  # the account page's address


def test_throttling_keys_on_the_real_client_behind_nginx(tmp_path: Path, alice: Any) -> None:
    with stack(tmp_path) as base:
        attacker = session(forwarded_for=ATTACKER)
        assert [login(attacker, base, "alice", "wrong").status_code for _ in range(5)] == [400] * 5
        refused = login(attacker, base, "alice", PASSWORD)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"

        # An untrusted client writes the victim's address itself: nginx appends its real one.
        spoofer = session(forwarded_for=VICTIM, source=UNTRUSTED_CLIENT)
        assert [login(spoofer, base, "alice", "wrong").status_code for _ in range(5)] == [400] * 5
        assert login(spoofer, base, "alice", "wrong").status_code == 429

        victim = login(session(forwarded_for=VICTIM), base, "alice", PASSWORD)
        assert victim.status_code == 302
    denied = SecurityEvent.objects.filter(event_type="login.password", outcome="denied")
    assert sorted(str(ip) for ip in denied.values_list("ip_address", flat=True)) == sorted([ATTACKER, UNTRUSTED_CLIENT])
    success = SecurityEvent.objects.get(event_type="login.password", outcome="success")
    assert success.ip_address == VICTIM and success.details["basis"] == "unfamiliar"


def _discovery_time(base: str) -> float:
    started = time.monotonic()
    response = requests.get(f"{base}/.well-known/openid-configuration", timeout=5)
    assert response.status_code == 200 and response.json()["issuer"] == base
    return time.monotonic() - started


def test_slow_bodies_through_nginx_keep_discovery_answering(tmp_path: Path, transactional_db: Any) -> None:
    """nginx buffers each body before it opens a connection upstream: eight stalled clients
    cost gunicorn nothing, even with fewer threads than stalled clients."""
    with stack(tmp_path, "--threads", "2") as base:
        port = int(base.rsplit(":", 1)[1])
        slow = [live_stack.SlowBody(port) for _ in range(8)]
        try:
            time.sleep(0.5)
            assert max(_discovery_time(base) for _ in range(5)) < 2.0
        finally:
            for client in slow:
                client.close()


@pytest.mark.parametrize("stalled", [4, 12])
def test_slow_bodies_straight_at_gunicorn_hold_a_thread_for_seconds_at_most(
    tmp_path: Path, transactional_db: Any, stalled: int
) -> None:
    """Reproduction: four clients sending a body slowly held all 4 sync workers of the README's
    deploy command, and discovery timed out until they hung up. With ``gunicorn.conf.py``
    (gthread, 8 threads here in one worker, a 2 s body deadline) discovery answers at once
    beside 4 of them, within the deadline beside 12, and each stalled client gets 408."""
    port = live_stack.free_port()
    base = f"http://localhost:{port}"
    with live_stack.gunicorn(tmp_path, base, port=port, VIGIL_BODY_TIMEOUT="2"):
        slow = [live_stack.SlowBody(port) for _ in range(stalled)]
        try:
            time.sleep(0.3)
            assert _discovery_time(base) < (1.0 if stalled < 8 else 4.0)
            answers = [client.answer(timeout=6) for client in slow]
            assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers), answers
            assert _discovery_time(base) < 1.0
        finally:
            for client in slow:
                client.close()
