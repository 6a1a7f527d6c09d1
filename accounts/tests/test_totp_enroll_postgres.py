"""The double submit as a race on PostgreSQL (``accounts/flows/totp_enroll.py``): two
confirmations of one set-up page sent at once, with the same session cookie and code. The
user's row lock judges them one after the other: one confirms and makes the codes, the
other is a repeat (or, arriving after the session id was renewed, is asked to sign in) and
changes nothing. The codes stored by the confirmation are the ones shown, once."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.flows import recovery
from accounts.flows.recovery_display import NEW_CODES_SESSION_KEY
from accounts.models import SealedTOTPDevice
from accounts.tests.conftest import code_for, login_password
from core.models import SecurityEvent
from tests.concurrency import run_concurrently

from .test_totp_enroll import codes_page, enroll_failures, state

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("count", [2, 4])
def test_concurrent_confirmations_confirm_once_and_keep_the_codes(user: Any, frozen: Any, count: int) -> None:
    assert connection.vendor == "postgresql"
    browser = Client()
    login_password(browser)
    browser.get(reverse("accounts:totp_enroll"))
    device = SealedTOTPDevice.objects.get(user=user, confirmed=False)
    code = code_for(device)
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value
    senders = [Client() for _ in range(count)]
    for sender in senders:
        sender.cookies[settings.SESSION_COOKIE_NAME] = cookie  # one page, sent again and again

    responses = run_concurrently(count, lambda i: senders[i].post(reverse("accounts:totp_enroll"), {"code": code}))

    confirmers = [s for s in senders if s.cookies[settings.SESSION_COOKIE_NAME].value not in ("", cookie)]
    assert len(confirmers) == 1, [(r.status_code, r.get("Location")) for r in responses]
    for response in responses:  # the confirmation and repeats: the codes page; a late one: sign in again
        where = response.get("Location", "")
        assert (response.status_code, where) == (303, codes_page()) or (
            response.status_code == 302 and where.startswith(reverse("accounts:login"))
        ), (response.status_code, response.content[:300])
    after = state(user)
    assert [(pk, confirmed) for pk, confirmed, *_ in after["devices"]] == [(device.pk, True)]  # no new secret
    assert SecurityEvent.objects.filter(event_type="factor.totp.enrolled").count() == 1
    assert SecurityEvent.objects.filter(event_type="factor.recovery_codes.generated").count() == 1
    assert not enroll_failures().exists()

    winner = confirmers[0]
    codes = winner.session[NEW_CODES_SESSION_KEY]
    assert after["codes"] == sorted(recovery._hash(c) for c in codes)  # the codes kept are the valid ones
    assert winner.get(codes_page()).context["codes"] == codes
    assert winner.get(codes_page()).context["codes"] == []  # once


def shown_secret(page: Any) -> str:
    """The key the page shows (from its HTML: the test client's captured contexts mix threads)."""
    found = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.content.decode())
    assert found is not None
    return found.group(1)


def test_set_up_pages_loaded_at_once_show_one_secret(user: Any, frozen: Any) -> None:
    """Two tabs (or more) open the set-up page at the same moment: each had made a secret of its
    own, and a code from the app that scanned one tab's was judged against the other's, a wrong
    code counted against the user. Made under the user's row lock, there is one pending secret,
    shown in every tab, and its code confirms it."""
    assert connection.vendor == "postgresql"
    browser = Client()
    login_password(browser)
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value
    tabs = [Client() for _ in range(6)]
    for tab in tabs:
        tab.cookies[settings.SESSION_COOKIE_NAME] = cookie

    pages = run_concurrently(len(tabs), lambda i: tabs[i].get(reverse("accounts:totp_enroll")))
    assert [page.status_code for page in pages] == [200] * len(tabs)
    assert len({shown_secret(page) for page in pages}) == 1
    device = SealedTOTPDevice.objects.get(user=user, confirmed=False)  # one pending secret
    confirmed = tabs[0].post(reverse("accounts:totp_enroll"), {"code": code_for(device)})
    assert confirmed.status_code == 303 and not enroll_failures().exists()
