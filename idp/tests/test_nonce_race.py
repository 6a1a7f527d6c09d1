"""Two sends of one authorization request by the same sign-in at the same moment (a double
click, a browser retrying while the first answer is still on its way) leave one live code of
the nonce, as one after the other does (``test_authorize.py``): the code is stored under the
user's row lock, so the second send sees the first's code and expires it. On PostgreSQL, where
the two run side by side; the test holds the lock until both requests wait on it."""

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

from accounts.models import User
from sessions.models import AuthorizationCode

from .conftest import authorize_params, query_of

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


def test_two_sends_at_once_leave_one_live_code(browser: BrowserClient, mobile_client: Any, pkce: Any,
                                               user: User) -> None:
    params = authorize_params(mobile_client.client.client_id, pkce)
    url = f"{reverse('authorize')}?{urlencode(params)}"
    twin = BrowserClient()
    twin.cookies = browser.cookies  # the same browser: one session cookie
    locked, release = threading.Event(), threading.Event()

    def hold_the_user_row() -> None:
        with transaction.atomic():
            User.objects.select_for_update().get(pk=user.pk)
            locked.set()
            release.wait(10)

    holder = _in_thread(hold_the_user_row)
    assert locked.wait(5)
    answers: list[Any] = []
    sends = [_in_thread(lambda c=c: answers.append(c.get(url))) for c in (browser, twin)]
    time.sleep(1.0)  # both requests reach the code's storage and wait on the lock
    release.set()
    for thread in (holder, *sends):
        thread.join(15)

    codes = [query_of(answer["Location"]).get("code") for answer in answers]
    assert len(codes) == 2 and all(codes), [a["Location"] for a in answers]
    live = AuthorizationCode.objects.filter(nonce=params["nonce"], used_at__isnull=True, expires_at__gt=timezone.now())
    assert live.count() == 1
    assert AuthorizationCode.objects.filter(nonce=params["nonce"]).count() == 2
