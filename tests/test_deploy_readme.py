"""The README's deploy steps are exactly sufficient (issue 12, item 1: first start).

The "Deploying with PostgreSQL and Redis" block is read from README.md at run time and run
as written (``tests/readme_deploy.py`` says the only substitutions) against a database this
test creates, with and without ``REDIS_URL``, and on SQLite too. Then, as an operator and a
relying service would:

1. the relying service loads the JWKS before anyone has signed in (it must already hold a
   key for every algorithm a client may use, cacheable);
2. the operator registers a user and a client with the README's commands (each variant
   with another signing algorithm; ``idp/tests/test_first_start.py`` signs with all three
   against a JWKS read before the first token);
3. a user signs in through the login form (the POST that was a 500 without
   ``createcachetable``), the client completes code + PKCE S256 and a refresh;
4. the first ID and access tokens, and the refreshed ones, verify against the JWKS loaded
   in step 1; revocation, logout, the admin's login page and the static files answer;
5. every cookie the sign-in set is a ``__Host-`` cookie (Secure, Path=/, no Domain).

The test plays the README's TLS proxy: requests for ``https://id.example.com`` go to
gunicorn with ``Host`` and ``X-Forwarded-Proto: https``, as a proxy would send them. In the
Redis variant the Celery worker and beat lines run too, on the test's Redis as broker: the
worker runs a task sent through the broker and beat installs its schedule in the new
database. Without Redis they are not started (their broker is Redis) and nothing in these
flows needs them.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import jwt
import psycopg
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from celery import Celery
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar

from .conftest import BrowserAgent
from .live_stack import free_port
from .readme_deploy import DROP, ROOT, Deployment, Plan, deploy_block, exported_env, plan

pytestmark = [pytest.mark.live]

ISSUER = "https://id.example.com"  # the README's, kept: the test is its TLS proxy
ALGS = ["ES256", "RS256", "EdDSA"]  # every algorithm a client may register (each variant signs in with one)
REDIRECT = "http://127.0.0.1:53682/callback"
PASSWORD = "first-start horse battery staple"


class TlsProxy(HTTPAdapter):
    """Sends ``https://id.example.com/...`` to gunicorn on 127.0.0.1, as the README's TLS proxy
    would (``Host``, ``X-Forwarded-Proto``, ``X-Forwarded-For``); cookies and redirects keep the
    public URL."""

    def __init__(self, port: int):
        super().__init__()
        self.port = port

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        public = urlsplit(request.url or "")
        inner = request.copy()
        inner.url = urlunsplit(("http", f"127.0.0.1:{self.port}", public.path, public.query, ""))
        inner.headers.update({"Host": public.netloc, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.10"})
        response = super().send(inner, **kwargs)
        response.request, response.url = request, request.url or ""
        return response


SessionT = TypeVar("SessionT", bound=requests.Session)


def proxied(session: SessionT, port: int) -> SessionT:
    session.mount(f"{ISSUER}/", TlsProxy(port))
    return session


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A new, empty database next to the test's own (named after it), dropped afterwards."""
    url = urlsplit(os.environ["DATABASE_URL"])
    name = f"{url.path.lstrip('/')}_deploy_{uuid.uuid4().hex[:8]}"
    admin = urlunsplit((url.scheme, url.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit((url.scheme, url.netloc, f"/{name}", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def overrides(database_url: str, redis_url: str | None) -> dict[str, str | None]:
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "IDP_KEY_ENCRYPTION_SECRET": secrets.token_urlsafe(32),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url if redis_url else DROP,
        # Without Redis the worker and beat are not started; the broker stays the README's.
        **({"CELERY_BROKER_URL": redis_url} if redis_url else {}),
    }


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([".venv/bin/python", "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_until_serving(deployment: Deployment, port: int, timeout: float = 180) -> None:
    session = proxied(requests.Session(), port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert deployment.alive(), f"the deploy block stopped:\n{deployment.output()}"
        try:
            if session.get(f"{ISSUER}/.well-known/openid-configuration", timeout=15).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # workers still booting
        time.sleep(0.5)
    raise AssertionError(f"gunicorn did not answer within {timeout} s:\n{deployment.output()}")


def load_jwks_at_start_up(port: int) -> jwt.PyJWKSet:
    response = proxied(requests.Session(), port).get(f"{ISSUER}/jwks.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=900"
    published = response.json()["keys"]
    assert {key["alg"] for key in published} >= set(ALGS), published
    return jwt.PyJWKSet.from_dict(response.json())


def verify(token: str, jwks: jwt.PyJWKSet, alg: str, audience: str) -> dict[str, Any]:
    kid = jwt.get_unverified_header(token)["kid"]
    key = next((k for k in jwks.keys if k.key_id == kid), None)
    assert key is not None, f"{alg} token signed by {kid}, which the start-up JWKS did not hold"
    return jwt.decode(token, key.key, algorithms=[alg], audience=audience, issuer=ISSUER)


def sign_in_and_refresh(port: int, client_id: str, alg: str, jwks: jwt.PyJWKSet) -> None:
    oauth = proxied(OAuth2Session(client_id, redirect_uri=REDIRECT, scope="openid profile email offline_access",
                                  code_challenge_method="S256", token_endpoint_auth_method="none"), port)
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(12)
    url, _ = oauth.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier, nonce=nonce)
    agent = BrowserAgent(ISSUER)
    proxied(agent.http, port)
    callback = agent.follow_to_client(url, REDIRECT, "operator-alice", PASSWORD)  # the login POST: 302, not 500
    assert_host_cookies(agent.http.cookies)
    token = oauth.fetch_token(f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier)
    assert verify(token["id_token"], jwks, alg, client_id)["nonce"] == nonce
    assert verify(token["access_token"], jwks, alg, client_id)["client_id"] == client_id
    refreshed = oauth.refresh_token(f"{ISSUER}/token", refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    verify(refreshed["access_token"], jwks, alg, client_id)
    assert oauth.get(f"{ISSUER}/userinfo", timeout=10).json()["email"] == "alice@example.com"
    assert oauth.revoke_token(f"{ISSUER}/revoke", token=refreshed["refresh_token"]).status_code == 200
    denied = oauth.post(f"{ISSUER}/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                  "refresh_token": refreshed["refresh_token"]}, timeout=10)
    assert denied.status_code == 400 and denied.json()["error"] == "invalid_grant"


def assert_host_cookies(jar: RequestsCookieJar) -> None:
    """Under the README's https issuer every cookie is a __Host- cookie (RFC 6265bis §4.1.3.2:
    Secure, Path=/, no Domain; docs/operations.md "Cookies")."""
    cookies = {cookie.name: cookie for cookie in jar}
    assert {"__Host-vigil_session", "__Host-vigil_csrftoken", "__Host-vigil_device"} <= set(cookies), set(cookies)
    for name, cookie in cookies.items():
        assert name.startswith("__Host-") and cookie.secure and cookie.path == "/", name
        assert not cookie.domain_specified and cookie.domain == "id.example.com", (name, cookie.domain)


def other_pages_answer(port: int) -> None:
    """The rest a first visitor or relying service reaches, static files included (served by
    WhiteNoise from what ``collectstatic`` gathered)."""
    http = proxied(requests.Session(), port)
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/ssf-configuration", "/logout",
                 "/accounts/login/", "/admin/login/", "/static/admin/css/base.css"):
        assert http.get(f"{ISSUER}{path}", timeout=10).status_code == 200, path


def probes_answer(port: int, multiproc_dir: str) -> None:
    """The probes answer a kubelet over plain HTTP to the host's address (no proxy, no
    allowed Host); /metrics is closed without a token; gunicorn's worker writes its samples
    to the block's PROMETHEUS_MULTIPROC_DIR."""
    base = f"http://127.0.0.1:{port}"
    assert requests.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert requests.get(f"{base}/metrics", timeout=10).status_code == 404
    assert list(Path(multiproc_dir).glob("counter_*.db"))


def register(env: dict[str, str], alg: str) -> str:
    """The README's "Operating it" commands: a user and a public client signing with ``alg``."""
    manage(env, "create_user", "--username", "operator-alice", "--email", "alice@example.com", "--password", PASSWORD)
    out = manage(env, "create_client", "--name", f"App {alg}", "--redirect-uri", "http://127.0.0.1/callback",
                 "--public", "--first-party", "--signing-alg", alg, "--json")
    return str(json.loads(out)["client_id"])


def run_deploy_block(database_url: str, redis_url: str | None, logs: Path, alg: str) -> None:
    port = free_port()
    start = ("gunicorn", "celery") if redis_url else ("gunicorn",)
    steps = plan(deploy_block(), overrides(database_url, redis_url), port, start=start)
    assert redis_url or all("celery" in line for line in steps.skipped)
    deployment = Deployment(steps, logs)
    deployment.start()
    try:
        wait_until_serving(deployment, port)
        jwks = load_jwks_at_start_up(port)  # before any token exists
        env = exported_env(steps.exports)
        assert ("REDIS_URL" in env) == bool(redis_url)
        sign_in_and_refresh(port, register(env, alg), alg, jwks)
        other_pages_answer(port)
        probes_answer(port, env["PROMETHEUS_MULTIPROC_DIR"])
        if redis_url:
            check_celery(deployment, steps, redis_url, database_url)
        else:
            assert database_cache_rows(database_url) > 0  # the cache was the database's
    finally:
        deployment.stop()
    assert not deployment.alive()


def database_cache_rows(database_url: str) -> int:
    query = "SELECT count(*) FROM vigil_cache"
    if database_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn:
            return int(conn.execute(query).fetchone()[0])
    with psycopg.connect(database_url) as conn:
        return int(conn.execute(query).fetchone()[0])  # type: ignore[index]


def check_celery(deployment: Deployment, steps: Plan, broker: str, database_url: str) -> None:
    worker = next(i for i, line in enumerate(steps.services) if " worker" in line)
    beat = next(i for i, line in enumerate(steps.services) if " beat" in line)
    deployment.wait_for_log(worker, r"ready\.")
    with Celery("deploy-test-sender", broker=broker, set_as_current=False) as sender:
        sent = sender.send_task("idp.purge_expired_codes_and_tokens")
    deployment.wait_for_log(worker, rf"Task idp\.purge_expired_codes_and_tokens\[{sent.id}\] succeeded")
    deployment.wait_for_log(beat, r"beat: Starting")
    deadline = time.monotonic() + 60
    names: set[str] = set()
    while time.monotonic() < deadline and "rotate-signing-keys" not in names:
        with psycopg.connect(database_url) as conn:
            names = {row[0] for row in conn.execute("SELECT name FROM django_celery_beat_periodictask")}
        time.sleep(0.5)
    assert "rotate-signing-keys" in names, deployment.output()


def test_readme_deploy_steps_on_sqlite_without_redis(tmp_path: Path) -> None:
    run_deploy_block(f"sqlite:///{tmp_path / 'vigil.sqlite3'}", None, tmp_path, "EdDSA")


@pytest.mark.postgres
def test_readme_deploy_steps_on_postgres_without_redis(postgres_database: str, tmp_path: Path) -> None:
    run_deploy_block(postgres_database, None, tmp_path, "RS256")


@pytest.mark.postgres
@pytest.mark.redis
def test_readme_deploy_steps_on_postgres_with_redis(postgres_database: str, tmp_path: Path) -> None:
    run_deploy_block(postgres_database, os.environ["REDIS_URL"], tmp_path, "ES256")
