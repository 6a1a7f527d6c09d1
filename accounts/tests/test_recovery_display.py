"""New recovery codes are shown exactly once (``accounts/flows/recovery_display.py``): a reload
says they were shown (and how to get new ones) instead of showing them again; of two loads
that both read the session before either saved it, only the first shows them; a cache outage
(the claim cannot be made) keeps them for the retry. The page never changes the stored codes."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from accounts.flows import recovery
from accounts.flows.recovery_display import NEW_CODES_SESSION_KEY, SHOWN_SESSION_KEY
from core.outage_testing import cache_down

from .test_recovery_regenerate import PROFILE, codes_page, page_token, regenerate, sign_in, state

pytestmark = pytest.mark.django_db

ALREADY_SHOWN = "Your new recovery codes were already shown, and are shown only once."


def assert_already_shown(response: Any, codes: list[str], next_url: str = PROFILE) -> None:
    """The readable page a reload gets: no codes, what happened, and the way on."""
    html = response.content.decode()
    assert response.status_code == 200 and response.context["codes"] == []
    assert ALREADY_SHOWN in html and "generate new ones on your account page" in html
    assert f'id="continue" href="{next_url}"' in html
    assert codes and not any(code in html for code in codes)
    assert response["Cache-Control"].startswith("max-age=0") and "no-store" in response["Cache-Control"]


def regenerated(client: Client) -> list[str]:
    """Codes just made by the regenerate form, kept in the session and not shown yet."""
    assert regenerate(client, page_token(client))["Location"] == codes_page()
    return list(client.session[NEW_CODES_SESSION_KEY])


def test_a_reload_says_the_codes_were_shown_and_shows_none(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    sign_in(client, totp_device)
    codes = regenerated(client)
    assert client.get(codes_page()).context["codes"] == codes
    after = state(user)

    for _ in range(2):
        assert_already_shown(client.get(codes_page()), codes)
    assert state(user) == after and recovery.still_valid(user, codes) == codes  # the page changed nothing
    assert NEW_CODES_SESSION_KEY not in client.session


def test_a_second_load_that_read_the_session_before_the_first_saved_it_shows_none(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    """A double load: both requests read the session while it still held the codes. The
    second is played by restoring the session row the first saved over."""
    sign_in(client, totp_device)
    codes = regenerated(client)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    read_by_both = Session.objects.get(session_key=key).session_data

    assert client.get(codes_page()).context["codes"] == codes  # the first load
    Session.objects.filter(session_key=key).update(session_data=read_by_both)
    assert NEW_CODES_SESSION_KEY in client.session  # the second load's view of the session
    after = state(user)

    assert_already_shown(client.get(codes_page()), codes)
    assert state(user) == after and recovery.still_valid(user, codes) == codes
    assert NEW_CODES_SESSION_KEY not in client.session


def test_new_codes_are_shown_again_once_each(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    """The "already shown" note is for the set shown: the next regeneration's codes are shown."""
    sign_in(client, totp_device)
    first = regenerated(client)
    client.get(codes_page())
    assert_already_shown(client.get(codes_page()), first)

    second = regenerated(client)
    assert SHOWN_SESSION_KEY not in client.session
    assert client.get(codes_page()).context["codes"] == second
    assert_already_shown(client.get(codes_page()), second)


def test_with_nothing_ever_shown_the_page_sends_the_browser_on(client: Client, user: Any, totp_device: Any,
                                                                 frozen: Any) -> None:
    sign_in(client, totp_device)
    response = client.get(codes_page())
    assert response.status_code == 302 and response["Location"] == PROFILE


def test_the_note_leads_on_to_the_next_page_and_to_the_account_page(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    """After a sign-in's first factor the page leads on to the sign-in's next step, and to the
    account page where new codes are made."""
    sign_in(client, totp_device)
    codes = regenerated(client)
    url = reverse("accounts:recovery_codes") + "?next=%2Fauthorize%3Fclient_id%3Dapp"
    assert client.get(url).context["codes"] == codes
    reloaded = client.get(url)
    assert_already_shown(reloaded, codes, next_url="/authorize?client_id=app")
    assert f'href="{PROFILE}"' in reloaded.content.decode()


def test_a_cache_outage_keeps_the_codes_for_the_retry(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any, settings: Any
) -> None:
    """Without the cache the claim cannot be made: a readable 503, and the codes are still
    there to be shown once it is back."""
    from idp.tests.test_outage import assert_page_503

    sign_in(client, totp_device)
    codes = regenerated(client)
    with cache_down(settings):
        assert_page_503(client.get(codes_page()))
    assert client.session[NEW_CODES_SESSION_KEY] == codes
    assert client.get(codes_page()).context["codes"] == codes
    assert_already_shown(client.get(codes_page()), codes)
