"""Outages answer cleanly and lose nothing (issue 12 item 4; docs/operations.md "Outages").

In process, with the failure injected at the storage layer (``core.outage_testing``): every
endpoint family answers 503 with ``Retry-After``, JSON ``temporarily_unavailable`` for the
protocol and API endpoints and a readable page for the HTML ones, with DEBUG on and off;
nothing the failed requests touched changed, and the same requests succeed once the store is
back. The live versions (a real Redis stopped, a real PostgreSQL connection cut) are in
tests/test_outage_live.py.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import psycopg
import pytest
import redis
from django.db import connection
from django.db import utils as db_utils
from django.http import HttpRequest
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from joserfc.jwk import ECKey

from core import outage
from core.models import SecurityEvent
from core.outage_testing import cache_down, database_down
from sessions.dpop.client import create_proof
from sessions.models import DeviceSession, RefreshToken

from .conftest import PASSWORD, exchange, form_post, get_code

pytestmark = pytest.mark.django_db

TRACEBACK_MARKERS = ("Traceback", "OperationalError", "ConnectionError", "Server Error (500)", "technical_500")


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request: Any, settings: Any) -> bool:
    settings.DEBUG = request.param
    return bool(request.param)


@pytest.fixture
def http() -> HttpClient:
    # Django's test client re-raises any exception Django reported, even one answered with a
    # response; a real server sends that response, which is what these tests look at.
    return HttpClient(raise_request_exception=False)


def assert_json_503(response: Any) -> None:
    assert response.status_code == 503, response.content[:500]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "temporarily_unavailable" and body["error_description"]
    assert set(body) == {"error", "error_description"}
    assert response["Retry-After"] == "5"
    assert response["Cache-Control"] == "no-store"


def assert_page_503(response: Any) -> None:
    assert response.status_code == 503, response.content[:500]
    assert response["Content-Type"].startswith("text/html")
    text = response.content.decode()
    assert "Vigil is briefly unavailable" in text and "Try again" in text
    assert not any(marker in text for marker in TRACEBACK_MARKERS)
    assert response["Retry-After"] == "5"


# ---- which errors count as an outage ---------------------------------------------------------


def _wrapped(cause: Exception, wrapper: type[Exception] = db_utils.OperationalError) -> Exception:
    try:
        raise wrapper(str(cause)) from cause
    except Exception as exc:
        return exc


@pytest.mark.parametrize(("exc", "expected"), [
    (psycopg.OperationalError("server closed the connection unexpectedly"), outage.Dependency.DATABASE),
    (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), outage.Dependency.DATABASE),
    (psycopg.errors.CannotConnectNow("the database system is starting up"), outage.Dependency.DATABASE),
    (psycopg.errors.TooManyConnections("too many clients"), outage.Dependency.DATABASE),
    (psycopg.InterfaceError("the connection is closed"), outage.Dependency.DATABASE),
    (db_utils.InterfaceError("connection already closed"), outage.Dependency.DATABASE),
    (redis.ConnectionError("Error 111 connecting"), outage.Dependency.CACHE),
    (redis.TimeoutError("Timeout reading from socket"), outage.Dependency.CACHE),
    (redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"), outage.Dependency.CACHE),
    (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), None),
    # A conflict PostgreSQL resolved by aborting the transaction: nothing written, retryable.
    (psycopg.errors.SerializationFailure("could not serialize access"), outage.Dependency.DATABASE),
    (psycopg.errors.DeadlockDetected("deadlock detected"), outage.Dependency.DATABASE),
    (psycopg.errors.UniqueViolation("duplicate key"), None),
    (db_utils.ProgrammingError("relation does not exist"), None),
    (redis.ResponseError("WRONGTYPE"), None),
    (ValueError("bad input"), None),
])
def test_only_connection_failures_are_outages(exc: Exception, expected: outage.Dependency | None) -> None:
    assert outage.dependency_of(exc) is expected


def test_driver_errors_are_judged_through_djangos_wrapper() -> None:
    import sqlite3

    assert outage.dependency_of(_wrapped(psycopg.OperationalError("connection failed"))) is outage.Dependency.DATABASE
    assert outage.dependency_of(_wrapped(psycopg.errors.QueryCanceled("statement timeout"))) is None
    assert outage.dependency_of(_wrapped(sqlite3.OperationalError("database is locked"))) is outage.Dependency.DATABASE
    assert outage.dependency_of(_wrapped(sqlite3.OperationalError("no such table: vigil_cache"))) is None
    # An error raised while handling a lost cache, from it, is still the cache's outage.
    assert outage.dependency_of(_wrapped(redis.ConnectionError("refused"), RuntimeError)) is outage.Dependency.CACHE


# ---- the database is down ------------------------------------------------------------------


def _json_requests(tokens: dict[str, Any], mobile_client: Any, service_client: Any) -> dict[str, Any]:
    """One request per JSON endpoint family, each of which needs the database."""
    mobile_id = mobile_client.client.client_id
    basic = base64.b64encode(f"{service_client.client.client_id}:{service_client.secret}".encode()).decode()
    service = {"HTTP_AUTHORIZATION": f"Basic {basic}"}
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access_token']}"}
    return {
        "token": lambda h: form_post(h, reverse("token"), {"grant_type": "refresh_token", "client_id": mobile_id,
                                                          "refresh_token": tokens["refresh_token"]}),
        "introspect": lambda h: form_post(h, reverse("introspect"), {"token": tokens["access_token"]}, **service),
        "revoke": lambda h: form_post(h, reverse("revoke"), {"token": tokens["refresh_token"], "client_id": mobile_id}),
        "userinfo": lambda h: h.get(reverse("userinfo"), **bearer),
        "jwks": lambda h: h.get(reverse("jwks")),
        "attestation": lambda h: h.post(reverse("attestation:challenge"), {"client_id": mobile_id, "purpose": "enroll"},
                                        content_type="application/json"),
        "usage": lambda h: form_post(h, reverse("risk:usage"), {"sub": "x", "bytes": 1}, **service),
        "ssf": lambda h: h.post(reverse("ssf-receive", args=["mdm"]), data="a.b.c", content_type="application/secevent+jwt"),
        "passkey-json": lambda h: h.post(reverse("accounts:passkey_auth_options"), "{}", content_type="application/json"),
    }


JSON_FAMILIES = ["token", "introspect", "revoke", "userinfo", "jwks", "attestation", "usage", "ssf", "passkey-json"]


@pytest.mark.parametrize("family", JSON_FAMILIES)
def test_json_endpoints_answer_503_while_the_database_is_down(family: str, debug: bool, http: HttpClient,
                                                              tokens: dict[str, Any], mobile_client: Any,
                                                              service_client: Any) -> None:
    send = _json_requests(tokens, mobile_client, service_client)[family]
    before = _token_state()
    with database_down() as refused:
        response = send(http)
    assert refused, "the request never reached the database"
    assert_json_503(response)
    assert _token_state() == before
    assert send(http).status_code < 500  # served again once the database is back, no restart


def test_discovery_needs_no_store_and_keeps_answering(http: HttpClient, settings: Any) -> None:
    with database_down() as refused, cache_down(settings):
        response = http.get(reverse("openid-configuration"))
    assert response.status_code == 200 and response.json()["token_endpoint"].endswith("/token")
    assert refused == []


def _html_requests(browser: HttpClient, mobile_client: Any, pkce: Any) -> dict[str, Any]:
    from .conftest import authorize_params

    login = reverse("accounts:login")
    params = authorize_params(mobile_client.client.client_id, pkce)
    return {
        "login": lambda h: h.post(login, {"username": "alice", "password": PASSWORD}),
        "wrong-password": lambda h: h.post(login, {"username": "alice", "password": "not the password"}),
        "authorize": lambda h: browser.get(reverse("authorize"), params),
        "account": lambda h: browser.get(reverse("accounts:profile")),
        "admin": lambda h: browser.get(reverse("admin:index")),
        "logout": lambda h: browser.get(reverse("end-session")),
        "account-logout": lambda h: browser.post(reverse("accounts:logout")),
        "device": lambda h: browser.get(reverse("device"), {"user_code": "BCDF-GHJK"}),  # RFC 8628 §3.3's page
    }


HTML_FAMILIES = ["login", "wrong-password", "authorize", "account", "admin", "logout", "account-logout", "device"]


@pytest.mark.django_db(transaction=True)  # sign-out revokes in a savepoint-free block: no test transaction around it
@pytest.mark.parametrize("family", HTML_FAMILIES)
def test_pages_show_a_readable_503_while_the_database_is_down(family: str, debug: bool, http: HttpClient,
                                                              browser: HttpClient, user: Any, mobile_client: Any,
                                                              pkce: Any) -> None:
    browser.raise_request_exception = False
    send = _html_requests(browser, mobile_client, pkce)[family]
    sessions_before = _browser_sessions()
    with database_down() as refused:
        response = send(http)
    assert refused
    assert_page_503(response)
    assert _browser_sessions() == sessions_before
    assert browser.get(reverse("accounts:profile")).status_code == 200  # still signed in afterwards


def test_a_failure_inside_a_middleware_is_answered_too(debug: bool, http: HttpClient, user: Any) -> None:
    """The password is right, but saving the new session fails (SessionMiddleware, after the
    view): Django turns that into a 500 before the outer middleware sees it."""
    with database_down(matching=lambda sql: "django_session" in sql) as refused:
        response = http.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    assert any("django_session" in sql for sql in refused)
    assert_page_503(response)
    assert not _browser_sessions()


def test_other_database_errors_stay_errors(http: HttpClient, user: Any) -> None:
    def programming_error() -> Exception:
        driver: Any = connection.Database  # type: ignore[attr-defined]  # each backend's DB-API module; not in the stubs
        return driver.ProgrammingError("relation does not exist")

    with database_down(error=programming_error):
        response = http.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 500
    assert "Retry-After" not in response


def test_a_refresh_refused_in_an_outage_works_afterwards(http: HttpClient, tokens: dict[str, Any],
                                                         mobile_client: Any) -> None:
    data = {"grant_type": "refresh_token", "client_id": mobile_client.client.client_id,
            "refresh_token": tokens["refresh_token"]}
    with database_down():
        assert_json_503(form_post(http, reverse("token"), data))
    again = form_post(http, reverse("token"), data)
    assert again.status_code == 200, again.content
    assert not DeviceSession.objects.filter(revoked_at__isnull=False).exists()


def test_retry_after_is_configurable(http: HttpClient, settings: Any, tokens: dict[str, Any]) -> None:
    settings.IDP_OUTAGE_RETRY_AFTER_SECONDS = 30
    with database_down():
        response = http.get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert response.status_code == 503 and response["Retry-After"] == "30"


@pytest.mark.parametrize("where", ["view", "middleware"])
def test_each_503_logs_one_line_naming_the_store_and_the_error(where: str, http: HttpClient, user: Any,
                                                                caplog: Any) -> None:
    """One warning per refused request, not a second ERROR from Django without the cause."""
    in_session_save = where == "middleware"
    with database_down(matching=lambda sql: not in_session_save or "django_session" in sql):
        http.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    outage_lines = [r for r in caplog.records if r.name == "vigil.outage"]
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in outage_lines] == [("WARNING", "database unavailable")]
    assert "OperationalError" in outage_lines[0].getMessage()
    # Django's line for the 503 itself is not repeated (a failure inside a middleware was
    # already logged by Django, with its traceback, as the 500 it replaced).
    assert not [r for r in caplog.records if r.name == "django.request" and "Service Unavailable" in r.getMessage()]


def test_no_event_is_attempted_while_the_database_is_down(http: HttpClient, user: Any) -> None:
    with database_down() as refused:
        assert_page_503(http.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD}))
    assert not any("idp_security_event" in sql for sql in refused)


# ---- the cache (Redis) is down -------------------------------------------------------------


@pytest.fixture
def dpop_key() -> ECKey:
    return ECKey.generate_key("P-256", private=True)


@pytest.fixture
def dpop_tokens(browser: HttpClient, mobile_client: Any, pkce: Any, dpop_key: ECKey, settings: Any) -> dict[str, Any]:
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    proof = create_proof(dpop_key, method="POST", url=f"{settings.IDP_ISSUER}/token")
    response = exchange(HttpClient(), code, pkce, mobile_client.client.client_id, HTTP_DPOP=proof)
    assert response.status_code == 200 and response.json()["token_type"] == "DPoP", response.content
    return response.json()


def _dpop_refresh(http: HttpClient, mobile_client: Any, refresh_token: str, key: ECKey, issuer: str) -> Any:
    proof = create_proof(key, method="POST", url=f"{issuer}/token")
    return form_post(http, reverse("token"), {"grant_type": "refresh_token", "client_id": mobile_client.client.client_id,
                                              "refresh_token": refresh_token}, HTTP_DPOP=proof)


def test_dpop_bound_refresh_answers_503_while_the_cache_is_down_and_works_after(
        debug: bool, http: HttpClient, settings: Any, dpop_tokens: dict[str, Any], dpop_key: ECKey,
        mobile_client: Any) -> None:
    before = _token_state()
    with cache_down(settings):
        response = _dpop_refresh(http, mobile_client, dpop_tokens["refresh_token"], dpop_key, settings.IDP_ISSUER)
    assert_json_503(response)
    assert _token_state() == before
    again = _dpop_refresh(http, mobile_client, dpop_tokens["refresh_token"], dpop_key, settings.IDP_ISSUER)
    assert again.status_code == 200, again.content
    assert not DeviceSession.objects.filter(revoked_at__isnull=False).exists()


@pytest.mark.parametrize("family", ["dpop-userinfo", "attestation"])
def test_json_endpoints_that_need_the_cache_answer_503_while_it_is_down(
        family: str, debug: bool, http: HttpClient, settings: Any, dpop_tokens: dict[str, Any], dpop_key: ECKey,
        mobile_client: Any) -> None:
    access = dpop_tokens["access_token"]
    send = {
        "dpop-userinfo": lambda: http.get(reverse("userinfo"), HTTP_AUTHORIZATION=f"DPoP {access}", HTTP_DPOP=create_proof(
            dpop_key, method="GET", url=f"{settings.IDP_ISSUER}/userinfo", access_token=access)),
        "attestation": lambda: http.post(reverse("attestation:challenge"), {"client_id": mobile_client.client.client_id,
                                                                            "purpose": "enroll"},
                                         content_type="application/json"),
    }[family]
    with cache_down(settings):
        assert_json_503(send())
    assert send().status_code == 200


@pytest.mark.parametrize("password", [PASSWORD, "not the password"], ids=["login", "wrong-password"])
def test_login_posts_show_a_readable_503_while_the_cache_is_down(password: str, debug: bool, http: HttpClient,
                                                                settings: Any, user: Any) -> None:
    with cache_down(settings):
        response = http.post(reverse("accounts:login"), {"username": "alice", "password": password})
    assert_page_503(response)
    assert not _browser_sessions()
    signed_in = http.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    assert signed_in.status_code == 302, signed_in.content


def test_a_cache_outage_is_recorded_as_an_event(http: HttpClient, settings: Any, user: Any) -> None:
    with cache_down(settings):
        http.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    event = SecurityEvent.objects.get(event_type="service.unavailable")
    assert (event.outcome, event.reason) == ("failure", "cache_unavailable")
    assert event.details["path"] == reverse("accounts:login") and event.details["error"] == "ConnectionError"


def test_both_stores_down_still_answers_503(http: HttpClient, settings: Any, user: Any) -> None:
    with cache_down(settings), database_down():
        response = http.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    assert_page_503(response)
    assert not SecurityEvent.objects.filter(event_type="service.unavailable").exists()


def test_the_page_links_back_to_the_same_page_on_this_site_only(http: HttpClient, settings: Any) -> None:
    with cache_down(settings):
        page = http.post(reverse("accounts:login") + "?next=/authorize", {"username": "alice", "password": "x"})
    assert 'href="/accounts/login/?next=/authorize"' in page.content.decode()
    request = HttpRequest()
    request.method, request.path = "GET", "//evil.example/accounts/"
    assert 'href="/evil.example/accounts/"' in outage.page_answer(request).content.decode()


# ---- helpers -------------------------------------------------------------------------------


def _token_state() -> list[list[tuple[Any, ...]]]:
    return [list(RefreshToken.objects.order_by("pk").values_list("pk", "revoked_at", "rotated_at")),
            list(DeviceSession.objects.order_by("pk").values_list("pk", "status", "revoked_at"))]


def _browser_sessions() -> list[str]:
    from django.contrib.sessions.models import Session

    return sorted(Session.objects.values_list("session_key", flat=True))


# ---- each write of the refresh path fails once ---------------------------------------------

WRITE = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)\"?", re.IGNORECASE)
WRITE_STEP = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)\"?", re.IGNORECASE)


def _writes(statements: list[str]) -> list[tuple[str, str]]:
    """(verb, table) of each write, in order; a data-modifying ``WITH`` (the one-statement
    rotation, issue 19) gives each of its steps."""
    found: list[re.Match[str]] = []
    for sql in statements:
        if sql.lstrip().upper().startswith("WITH"):
            found += WRITE_STEP.finditer(sql)
        elif match := WRITE.match(sql):
            found.append(match)
    return [(m.group(1).split()[0].upper(), m.group(2)) for m in found]


class FailOnce:
    """A ``database_down`` matcher: fails the first statement that is ``write``, only that one."""

    def __init__(self, write: tuple[str, str]):
        self.write, self.fired = write, False

    def __call__(self, sql: str) -> bool:
        if self.fired or self.write not in _writes([sql]):
            return False
        self.fired = True
        return True


@pytest.mark.django_db(transaction=True)  # the rotation runs in its own savepoint-free transaction
def test_each_write_of_a_refresh_failing_once_answers_a_json_503(browser: HttpClient, mobile_client: Any,
                                                                   pkce: Any) -> None:
    """Issue 12 item 4: force each individual write of the refresh path to fail once. The
    answer is always a clean JSON 503 (whether a retry then succeeds is the refresh path's
    own contract, item 5)."""
    http = HttpClient(raise_request_exception=False)

    def fresh_refresh_token() -> str:
        code, _ = get_code(browser, mobile_client.client.client_id, pkce)
        response = exchange(HttpClient(), code, pkce, mobile_client.client.client_id)
        assert response.status_code == 200, response.content
        return response.json()["refresh_token"]

    def refresh(token: str) -> Any:
        return form_post(http, reverse("token"), {"grant_type": "refresh_token", "refresh_token": token,
                                                  "client_id": mobile_client.client.client_id})

    first = fresh_refresh_token()
    with CaptureQueriesContext(connection) as seen:
        assert refresh(first).status_code == 200
    writes = list(dict.fromkeys(_writes([query["sql"] for query in seen.captured_queries])))
    assert ("UPDATE", RefreshToken._meta.db_table) in writes and ("INSERT", SecurityEvent._meta.db_table) in writes
    for write in writes:
        token, matcher = fresh_refresh_token(), FailOnce(write)
        with database_down(matching=matcher):
            response = refresh(token)
        assert matcher.fired, write
        assert_json_503(response)
