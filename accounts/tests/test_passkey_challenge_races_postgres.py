"""The double submit of a passkey sign-in as a real race on PostgreSQL (``accounts/webauthn_rp.py``,
``spending``): several requests of one browser session send the same assertion at once, each on
its own connection, all having read the session that holds the challenge. The authenticator's
counter stays 0 (a synced passkey's), so only the challenge's used-mark can refuse the copies:
exactly one signs in, the others are refused with a 400, none is a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from core.models import SecurityEvent
from tests.concurrency import run_concurrently

from .test_passkey_challenge_races import ORIGIN, RP_ID, enrolled, post, request_options, sign_ins

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def relying_party(settings: Any) -> None:
    settings.ACCOUNTS_WEBAUTHN_RP_ID = RP_ID
    settings.ACCOUNTS_WEBAUTHN_ALLOWED_ORIGINS = [ORIGIN]


@pytest.mark.parametrize("count", [2, 4])
def test_the_same_assertion_sent_at_once_signs_in_once(user: Any, frozen: Any, count: int) -> None:
    assert connection.vendor == "postgresql"
    authenticator = enrolled(user)
    browser = Client()
    options = request_options(browser)
    body = {"purpose": "login", "credential": authenticator.get(options.json()), "next": "/accounts/"}
    senders = [Client() for _ in range(count)]
    for sender in senders:
        sender.cookies[django_settings.SESSION_COOKIE_NAME] = browser.cookies[django_settings.SESSION_COOKIE_NAME].value

    answers = run_concurrently(count, lambda i: post(senders[i], "accounts:passkey_auth_verify", body))

    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] + [400] * (count - 1), [(a.status_code, a.content[:200]) for a in answers]
    assert sign_ins() == 1
    refused = SecurityEvent.objects.filter(event_type="login.passkey", outcome="failure")
    assert refused.count() <= count - 1  # a copy that lost the session to the winner's sign-in may end before
    assert set(refused.values_list("reason", flat=True)) <= {"challenge_used", "no_challenge"}
