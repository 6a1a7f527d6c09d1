"""Sends of one authorization request at the same moment are judged as one after the other
(``test_authorize.py``): codes of a nonce are stored one at a time (``hold_nonce``) and the
replay check runs again under that lock. The same sign-in sending twice (a double click, a
browser retrying while the first answer is on its way) leaves one live code; another sign-in
sending the nonce at the same moment gets the replay error it would get a moment later. On
PostgreSQL, where the sends run side by side; the test holds the lock until both wait on it."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection, transaction
from django.test import Client as BrowserClient
from django.urls import reverse
from django.utils import timezone

from idp.oauth.grants.authorization_code import hold_nonce
from sessions.models import AuthorizationCode

from .conftest import PASSWORD, authorize_params, query_of

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _in_thread(work: Any) -> threading.Thread:
    def run() -> None:
        try:
            work()
        finally:
            connection.close()  # each thread has its own connection

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _send_together(params: dict[str, str], client_id: str, browsers: list[BrowserClient]) -> list[dict[str, str]]:
    """Each browser sends the request while the nonce's lock is held elsewhere; then it is let go."""
    url = f"{reverse('authorize')}?{urlencode(params)}"
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            hold_nonce(client_id, params["nonce"])
            locked.set()
            release.wait(10)

    holder = _in_thread(hold)
    assert locked.wait(5)
    answers: list[Any] = []
    sends = [_in_thread(lambda b=b: answers.append(b.get(url))) for b in browsers]
    time.sleep(1.0)  # both requests reach the code's storage and wait on the lock
    release.set()
    for thread in (holder, *sends):
        thread.join(15)
    assert len(answers) == len(browsers)
    return [query_of(answer["Location"]) for answer in answers]


def _live(nonce: str) -> int:
    return AuthorizationCode.objects.filter(nonce=nonce, used_at__isnull=True, expires_at__gt=timezone.now()).count()


def test_two_sends_of_one_sign_in_at_once_leave_one_live_code(browser: BrowserClient, mobile_client: Any,
                                                              pkce: Any) -> None:
    client_id = mobile_client.client.client_id
    params = authorize_params(client_id, pkce)
    twin = BrowserClient()
    twin.cookies = browser.cookies  # the same browser: one session cookie
    answers = _send_together(params, client_id, [browser, twin])
    assert all("code" in answer for answer in answers), answers
    assert _live(params["nonce"]) == 1
    assert AuthorizationCode.objects.filter(nonce=params["nonce"]).count() == 2


def test_another_sign_in_sending_the_nonce_at_once_is_a_replay(browser: BrowserClient, mobile_client: Any,
                                                               pkce: Any) -> None:
    client_id = mobile_client.client.client_id
    params = authorize_params(client_id, pkce)
    other = BrowserClient()
    assert other.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD}).status_code == 302
    answers = _send_together(params, client_id, [browser, other])
    assert sorted("code" in answer for answer in answers) == [False, True], answers
    assert [a["error"] for a in answers if "code" not in a] == ["invalid_request"]
    assert AuthorizationCode.objects.filter(nonce=params["nonce"]).count() == 1 and _live(params["nonce"]) == 1
