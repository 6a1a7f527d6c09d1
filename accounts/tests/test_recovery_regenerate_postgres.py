"""The double submit as a race on PostgreSQL (``accounts/flows/recovery_regenerate.py``):
regenerate forms of one profile page sent at once, with the same session cookie and form
token. The user's row lock judges them one after the other: one replaces the codes, the
others find the set their form names gone and change nothing. The set stored is the one
kept in the session, shown once."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice

from accounts.flows import recovery
from accounts.flows.recovery_display import NEW_CODES_SESSION_KEY
from tests.concurrency import run_concurrently

from .test_recovery_regenerate import codes_page, page_token, regenerations, sign_in, stored_hashes

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("count", [2, 4])
def test_concurrent_regenerations_store_one_set_and_show_that_one(
    user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any, count: int
) -> None:
    assert connection.vendor == "postgresql"
    browser = Client()
    sign_in(browser, totp_device)
    token = page_token(browser)
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value
    senders = [Client() for _ in range(count)]
    for sender in senders:
        sender.cookies[settings.SESSION_COOKIE_NAME] = cookie  # one page, sent again and again

    url = reverse("accounts:recovery_regenerate")
    responses = run_concurrently(count, lambda i: senders[i].post(url, {"form_token": token}))

    assert [(r.status_code, r["Location"]) for r in responses] == [(303, codes_page())] * count
    assert regenerations().count() == 1  # one regeneration, the others repeats recorded nowhere
    assert StaticDevice.objects.filter(user=user).count() == 1
    assert not recovery.still_valid(user, recovery_codes)

    codes = browser.session[NEW_CODES_SESSION_KEY]  # no repeat erased what the regeneration kept
    assert stored_hashes(user) == sorted(recovery._hash(code) for code in codes)  # the set stored is the one kept
    assert browser.get(codes_page()).context["codes"] == codes
    assert browser.get(codes_page()).context["codes"] == []  # once


@pytest.mark.parametrize("count", [2, 4])
def test_concurrent_loads_of_the_codes_page_show_the_codes_once(
    user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any, count: int
) -> None:
    """A double load (``accounts/flows/recovery_display.py``): the loads may all read the session
    before any saves it; one shows the codes, the others say they were shown."""
    browser = Client()
    sign_in(browser, totp_device)
    browser.post(reverse("accounts:recovery_regenerate"), {"form_token": page_token(browser)})
    codes = browser.session[NEW_CODES_SESSION_KEY]
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value
    loaders = [Client() for _ in range(count)]
    for loader in loaders:
        loader.cookies[settings.SESSION_COOKIE_NAME] = cookie

    pages = run_concurrently(count, lambda i: loaders[i].get(codes_page()))

    # By the HTML: the test client's captured context is global to the threads' renders.
    html = [page.content.decode() for page in pages]
    assert all(page.status_code == 200 for page in pages)
    assert sorted(all(code in text for code in codes) for text in html) == [False] * (count - 1) + [True]
    assert sum("were already shown" in text and not any(code in text for code in codes) for text in html) == count - 1
    assert stored_hashes(user) == sorted(recovery._hash(code) for code in codes)  # the page changed nothing
