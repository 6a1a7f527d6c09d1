"""Outages against real services (issue 12 item 4; docs/operations.md "Outages").

Vigil runs under gunicorn (``gunicorn.conf.py``, one worker) on the test database. A private ``redis-server`` is stopped and
started again; PostgreSQL is reached through a TCP proxy that the test cuts (every connection
closed, new ones refused) and restores. While a store is gone, the protocol and API endpoints
answer 503 ``temporarily_unavailable`` JSON with ``Retry-After`` and the pages a readable
"try again" page, with DEBUG off (Redis) and on (PostgreSQL); nothing is lost, and the same
web worker serves again as soon as the store is back.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.conf import settings
from django.db import connection
from joserfc.jwk import ECKey

from clients.flows.registration import RegisteredClient, register_client
from core.models import SecurityEvent
from sessions.dpop.client import create_proof
from sessions.models import DeviceSession, RefreshToken

from . import test_e2e_oidc_clients as e2e
from .conftest import BrowserAgent
from .live_stack import Gunicorn, gunicorn
from .outage_support import CuttableProxy, PrivateRedis, database_url_through

pytestmark = [pytest.mark.live, pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

PASSWORD = e2e.PASSWORD
REDIRECT = "http://127.0.0.1/callback"
TRACEBACK_MARKERS = ("Traceback", "OperationalError", "ConnectionError", "Server Error (500)", "technical_500")

alice = e2e.alice  # the signed-up user, fixture


@pytest.fixture
def app(db: Any) -> RegisteredClient:
    return register_client(name="Outage app", public=True, redirect_uris=[REDIRECT], first_party=True)


@pytest.fixture
def service(db: Any, app: RegisteredClient) -> RegisteredClient:
    """The relying service of the app's tokens (RFC 7662 §4: it may introspect what it serves)."""
    return register_client(name="Outage service", public=False, redirect_uris=["https://svc.example.com/cb"],
                           served_resources=[app.client.client_id])


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_proxy() -> Iterator[CuttableProxy]:
    """A ``CuttableProxy`` in front of the test's PostgreSQL."""
    settings_dict = connection.settings_dict
    proxy = CuttableProxy((settings_dict["HOST"] or "127.0.0.1", int(settings_dict["PORT"] or 5432)))
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def web_through_proxy(tmp_path: Path, redis_server: PrivateRedis, postgres_proxy: CuttableProxy) -> Iterator[Gunicorn]:
    """Vigil under gunicorn with DEBUG on, reaching PostgreSQL through ``postgres_proxy``."""
    with gunicorn(tmp_path, REDIS_URL=redis_server.url, DJANGO_DEBUG="1", DATABASE_CONNECT_TIMEOUT="2",
                  DATABASE_URL=database_url_through(postgres_proxy.port)) as web:
        yield web


class Device:
    """A mobile app holding a DPoP key and a DPoP-bound refresh token, and its user's browser."""

    def __init__(self, base: str, client_id: str):
        self.base, self.client_id = base, client_id
        self.key = ECKey.generate_key("P-256", private=True)
        self.browser = BrowserAgent(base)
        self.tokens: dict[str, Any] = {}

    def sign_in(self) -> None:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({"response_type": "code", "client_id": self.client_id, "redirect_uri": REDIRECT,
                           "scope": "openid offline_access", "code_challenge": challenge,
                           "code_challenge_method": "S256", "state": secrets.token_urlsafe(8),
                           "nonce": secrets.token_urlsafe(8)})
        callback = self.browser.follow_to_client(f"{self.base}/authorize?{query}", REDIRECT, "alice", PASSWORD)
        code = parse_qs(urlsplit(callback).query).get("code", [None])[0]
        assert code, callback
        response = self.token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                               "code_verifier": verifier})
        assert response.status_code == 200 and response.json()["token_type"] == "DPoP", response.text
        self.tokens = response.json()

    def token(self, data: dict[str, str]) -> requests.Response:
        proof = create_proof(self.key, method="POST", url=f"{self.base}/token")
        return requests.post(f"{self.base}/token", data={**data, "client_id": self.client_id},
                             headers={"DPoP": proof}, timeout=15)

    def refresh(self) -> requests.Response:
        return self.token({"grant_type": "refresh_token", "refresh_token": self.tokens["refresh_token"]})

    def userinfo(self) -> requests.Response:
        proof = create_proof(self.key, method="GET", url=f"{self.base}/userinfo",
                             access_token=self.tokens["access_token"])
        return requests.get(f"{self.base}/userinfo", timeout=15,
                            headers={"Authorization": f"DPoP {self.tokens['access_token']}", "DPoP": proof})

    def login_post(self, password: str) -> requests.Response:
        """A fresh browser's sign-in form, filled in and sent."""
        browser = requests.Session()
        page = browser.get(f"{self.base}/accounts/login/", timeout=15)
        assert page.status_code == 200, page.text[:300]
        return browser.post(f"{self.base}/accounts/login/", timeout=15, allow_redirects=False,
                            data={"csrfmiddlewaretoken": browser.cookies[settings.CSRF_COOKIE_NAME], "username": "alice",
                                  "password": password},
                            headers={"Referer": f"{self.base}/accounts/login/"})


def assert_json_503(response: requests.Response) -> None:
    assert response.status_code == 503, (response.request.url, response.status_code, response.text[:300])
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) > 0


def assert_page_503(response: requests.Response) -> None:
    assert response.status_code == 503, (response.request.url, response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Vigil is briefly unavailable" in response.text
    assert not any(marker in response.text for marker in TRACEBACK_MARKERS)
    assert int(response.headers["Retry-After"]) > 0


def stored_state() -> list[Any]:
    """Everything an outage must not change: refresh tokens, device sessions, the user."""
    return [list(RefreshToken.objects.order_by("pk").values_list("pk", "rotated_at", "revoked_at")),
            list(DeviceSession.objects.order_by("pk").values_list("pk", "status", "revoked_at")),
            list(SecurityEvent.objects.filter(event_type__startswith="login").values_list("pk", "outcome"))]


def test_redis_stopped_then_restarted(redis_server: PrivateRedis, alice: Any, app: RegisteredClient,
                                      tmp_path: Path) -> None:
    with gunicorn(tmp_path, REDIS_URL=redis_server.url) as web:
        device = Device(web.base, app.client.client_id)
        device.sign_in()
        before = stored_state()

        redis_server.stop()
        assert_json_503(device.refresh())
        assert_page_503(device.login_post(PASSWORD))
        assert_page_503(device.login_post("not the password"))
        assert stored_state() == before  # nothing rotated, revoked, signed in or counted
        assert SecurityEvent.objects.filter(event_type="service.unavailable", reason="cache_unavailable").count() == 3

        redis_server.start()  # same port, empty: the web worker is not restarted
        refreshed = device.refresh()
        assert refreshed.status_code == 200, refreshed.text
        assert device.login_post(PASSWORD).status_code == 302  # the refused attempts locked nobody
        web.assert_not_restarted()


def test_postgresql_connection_cut_then_restored(web_through_proxy: Gunicorn, postgres_proxy: CuttableProxy,
                                                 alice: Any, app: RegisteredClient, service: RegisteredClient) -> None:
    web = web_through_proxy
    device = Device(web.base, app.client.client_id)
    device.sign_in()
    before = stored_state()

    postgres_proxy.cut()
    _assert_every_family_answers_503(web.base, device, service)
    assert stored_state() == before

    postgres_proxy.restore()
    refreshed = device.refresh()
    assert refreshed.status_code == 200, refreshed.text
    device.tokens = refreshed.json()
    assert device.userinfo().status_code == 200
    introspected = requests.post(f"{web.base}/introspect", data={"token": device.tokens["access_token"]},
                                 auth=(service.client.client_id, service.secret or ""), timeout=15)
    assert introspected.status_code == 200 and introspected.json()["active"] is True
    account = device.browser.http.get(f"{web.base}/accounts/", timeout=15, allow_redirects=False)
    assert account.status_code == 200 and "alice" in account.text  # the browser session survived
    web.assert_not_restarted()


def _assert_every_family_answers_503(base: str, device: Device, service: RegisteredClient) -> None:
    secret = (service.client.client_id, service.secret or "")
    assert_json_503(device.refresh())
    assert_json_503(device.userinfo())
    assert_json_503(requests.post(f"{base}/introspect", data={"token": device.tokens["access_token"]},
                                  auth=secret, timeout=15))
    assert_json_503(requests.post(f"{base}/revoke", timeout=15,
                                  data={"token": device.tokens["refresh_token"], "client_id": device.client_id}))
    assert_json_503(requests.post(f"{base}/attestation/challenge", json={"client_id": device.client_id,
                                                                         "purpose": "enroll"}, timeout=15))
    assert_json_503(requests.post(f"{base}/usage", data={"sub": "x", "bytes": 1}, auth=secret, timeout=15))
    assert_json_503(requests.post(f"{base}/ssf/receive/mdm", data="a.b.c", timeout=15,
                                  headers={"Content-Type": "application/secevent+jwt"}))
    assert_json_503(requests.get(f"{base}/jwks.json", timeout=15))
    for document in ("openid-configuration", "ssf-configuration"):  # static: they need neither store
        assert requests.get(f"{base}/.well-known/{document}", timeout=15).status_code == 200
    browser = device.browser.http
    assert_page_503(browser.get(f"{base}/accounts/", timeout=15))
    assert_page_503(browser.get(f"{base}/authorize", params={"client_id": device.client_id, "response_type": "code",
                                                              "redirect_uri": REDIRECT, "scope": "openid"}, timeout=15))
    assert_page_503(browser.get(f"{base}/logout", timeout=15))
    assert_page_503(browser.get(f"{base}/admin/", timeout=15))
    assert_page_503(device.login_post(PASSWORD))
    assert_page_503(device.login_post("not the password"))


def test_postgresql_cut_under_refreshing_devices_answers_only_json(web_through_proxy: Gunicorn,
                                                                    postgres_proxy: CuttableProxy, alice: Any,
                                                                    app: RegisteredClient) -> None:
    """The reproduction: devices refreshing in a loop while PostgreSQL goes away and comes
    back. Every answer is a success, a JSON 503, or (a lost response whose rotation did
    commit: item 5 of issue 12, the refresh path) a JSON OAuth error; never a 500 or HTML."""
    web = web_through_proxy
    devices = [Device(web.base, app.client.client_id) for _ in range(4)]
    for device in devices:
        device.sign_in()
    answers: list[requests.Response] = []
    stop = threading.Event()
    loops = [threading.Thread(target=_refresh_until, args=(device, stop, answers)) for device in devices]
    for loop in loops:
        loop.start()
    time.sleep(1.0)
    postgres_proxy.cut()
    time.sleep(2.0)
    postgres_proxy.restore()
    time.sleep(2.0)
    stop.set()
    for loop in loops:
        loop.join(30)
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses[503] > 0 and statuses[200] > 0, statuses
    assert set(statuses) <= {200, 400, 503}, statuses
    for answer in answers:
        assert answer.headers["Content-Type"] == "application/json", answer.text[:300]
        if answer.status_code == 503:
            assert_json_503(answer)
    web.assert_not_restarted()


def _refresh_until(device: Device, stop: threading.Event, answers: list[requests.Response]) -> None:
    while not stop.is_set():
        answer = device.refresh()
        answers.append(answer)
        if answer.status_code == 200:
            device.tokens = answer.json()
        elif answer.status_code == 400:
            return  # this family is gone (see the docstring); the others go on
        else:
            time.sleep(0.05)
