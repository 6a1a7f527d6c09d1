"""A pushed request survives a failure after it was taken (RFC 9126 §4, §7.3; docs/authorization.md
"Pushed authorization requests"): the browser that took it gets it again when the answer was a
503, while any other browser, and this one once its code was issued, is refused as before.

The failures are real driver errors injected at the storage layer (``core.outage_testing``):
the session's own write, or the authorization code's insert, fails after the take.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.urls import reverse

from core.models import SecurityEvent
from core.outage_testing import database_down
from idp.oauth import par
from sessions.models import AuthorizationCode

from .conftest import MOBILE_REDIRECT, PASSWORD, authorize_params, exchange, query_of
from .jar_support import authorize_url, push

pytestmark = pytest.mark.django_db

SESSION_WRITE = "django_session"
CODE_INSERT = "idp_authorization_code"


def _writes_to(table: str) -> Any:
    def matching(sql: str) -> bool:
        return sql.lstrip().upper().startswith(("INSERT", "UPDATE")) and table in sql
    return matching


def _agent(signed_in: bool = True) -> HttpClient:
    # A real server sends the 503 the outage middleware answers; the test client would re-raise.
    agent = HttpClient(raise_request_exception=False)
    if signed_in:
        assert agent.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD}).status_code == 302
    return agent


def _pushed(mobile_client: Any, pkce: Any, **extra: Any) -> tuple[str, str]:
    params = authorize_params(mobile_client.client.client_id, pkce, **extra)
    response = push(params)
    assert response.status_code == 201, response.content
    return response.json()["request_uri"], params["state"]


def _refusals(reason: str) -> int:
    return SecurityEvent.objects.filter(event_type="oauth.request_uri_refused", reason=reason).count()


def _code_for(response: Any) -> dict[str, str]:
    assert response.status_code == 302 and response["Location"].startswith(MOBILE_REDIRECT + "?"), (
        response.status_code, response.get("Location"), response.content[:300])
    return query_of(response["Location"])


def _already_used(response: Any) -> None:
    assert response.status_code == 400 and "Location" not in response, response.status_code
    assert "invalid_request_uri" in response.content.decode() and "already used" in response.content.decode()


@pytest.mark.django_db(transaction=True)  # the code's insert is not in a savepoint: no test transaction around it
@pytest.mark.parametrize("failing", [SESSION_WRITE, CODE_INSERT])
def test_a_503_after_the_take_leaves_the_request_to_the_same_browser_only(user, mobile_client, pkce, failing):
    # With a nonce: when the session's write fails, the code before it was committed; the same
    # sign-in's retry naming that nonce is not a replay (OpenIDCode.exists_nonce) and gets a new code.
    request_uri, state = _pushed(mobile_client, pkce)
    url = authorize_url(mobile_client.client.client_id, request_uri=request_uri)
    browser = _agent()
    with database_down(_writes_to(failing)) as refused:
        failed = browser.get(url)
    assert refused and failed.status_code == 503 and failed["Retry-After"], failed.status_code
    retried = _code_for(browser.get(url))  # the retry: same browser, a code that works
    assert retried["state"] == state
    assert exchange(HttpClient(), retried["code"], pkce, mobile_client.client.client_id).status_code == 200
    codes = AuthorizationCode.objects.count()
    _already_used(_agent().get(url))  # another browser, signed in as the same user
    _already_used(browser.get(url))  # the same browser after its code: a replay
    assert AuthorizationCode.objects.count() == codes and _refusals("replayed") == 2


def test_a_browser_without_any_session_gets_its_request_again_after_a_503(user, mobile_client, pkce):
    """The hardest case: no session cookie yet, and the session's first write fails; the
    503 itself carries the binding cookie, so the retry is recognised."""
    request_uri, state = _pushed(mobile_client, pkce)
    url = authorize_url(mobile_client.client.client_id, request_uri=request_uri)
    browser = _agent(signed_in=False)
    with database_down(_writes_to(SESSION_WRITE)) as refused:
        failed = browser.get(url)
    assert refused and failed.status_code == 503
    assert settings.SESSION_COOKIE_NAME not in failed.cookies and par_cookie() in failed.cookies
    to_login = browser.get(url)
    assert to_login.status_code == 302 and reverse("accounts:login") in to_login["Location"]
    assert browser.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD}).status_code == 302
    assert _code_for(browser.get(url))["state"] == state
    stranger = _agent(signed_in=False)
    _already_used(stranger.get(url))
    assert _refusals("replayed") == 1 and AuthorizationCode.objects.count() == 1


def test_a_forged_or_copied_binding_cookie_is_not_the_browser(user, mobile_client, pkce):
    request_uri, _ = _pushed(mobile_client, pkce)
    url = authorize_url(mobile_client.client.client_id, request_uri=request_uri)
    browser = _agent()
    _code_for(browser.get(url))
    forger = _agent()
    forger.cookies[par_cookie()] = "not-the-value"
    _already_used(forger.get(url))
    assert AuthorizationCode.objects.count() == 1 and _refusals("replayed") == 1


def par_cookie() -> str:
    from idp.flows.authorize_request import browser_cookie_name

    return browser_cookie_name()


def test_two_browsers_racing_for_one_request_uri_one_wins(mobile_client):
    """Many rounds of two browsers taking the same request_uri at the same instant: exactly one
    gets it each time (the cache's atomic add decides), and only that one again."""
    for _ in range(20):
        request_uri = par.push(mobile_client.client.client_id, {"state": ["s"]}, 60)
        gate, results = threading.Barrier(2), dict[str, Any]()

        def take(browser: str, uri: str = request_uri, barrier: threading.Barrier = gate,
                 into: dict[str, Any] = results) -> None:
            barrier.wait()
            into[browser] = par.take(uri, mobile_client.client.client_id, browser)

        threads = [threading.Thread(target=take, args=(name,)) for name in ("browser-a", "browser-b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [name for name, result in results.items() if isinstance(result, par.Pushed)]
        assert len(winners) == 1, results
        loser = next(name for name in results if name not in winners)
        assert results[loser] is par.RequestUriProblem.REPLAYED
        assert isinstance(par.take(request_uri, mobile_client.client.client_id, winners[0]), par.Pushed)
        assert par.take(request_uri, mobile_client.client.client_id, loser) is par.RequestUriProblem.REPLAYED
