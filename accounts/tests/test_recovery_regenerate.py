"""Replacing the recovery codes once per form the user sent (``accounts/flows/recovery_regenerate.py``):
Post/Redirect/Get to the page that shows the new codes once; the same form sent again lands
there too and changes nothing; a new page load regenerates again; a missing, forged, expired
(retired key) or foreign token is a recorded refusal that changes nothing; a missing CSRF token
or a stale sign-in change nothing."""

from __future__ import annotations

import re
import struct
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

from accounts.app_settings import app_settings
from accounts.flows import recovery
from accounts.flows.recovery_display import NEW_CODES_SESSION_KEY
from accounts.flows.recovery_regenerate import form_token
from accounts.tests.conftest import code_for, login_password
from core.models import SecurityEvent
from core.signed_values import Purpose, dump

pytestmark = pytest.mark.django_db

PROFILE = "/accounts/"
OUT_OF_DATE = "That page was out of date, so no new codes were made. Try again."


def codes_page() -> str:
    return reverse("accounts:recovery_codes") + "?next=%2Faccounts%2F"


def sign_in(client: Client, device: Any) -> None:
    """Password and TOTP: recent enough, and multi-factor, to change factors."""
    login_password(client)
    assert client.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(device)}).status_code == 302


def page_token(client: Client) -> str:
    """The hidden token of the regenerate form, as the profile page renders it."""
    html = client.get(PROFILE).content.decode()
    form = re.search(r'<form [^>]*id="recovery-regenerate".*?</form>', html, re.S)
    assert form is not None, "no regenerate form on the profile page"
    found = re.search(r'name="form_token" value="([^"]+)"', form.group(0))
    assert found is not None
    return found.group(1)


def regenerate(client: Client, token: str | None) -> Any:
    return client.post(reverse("accounts:recovery_regenerate"), {} if token is None else {"form_token": token})


def state(user: Any) -> dict[str, Any]:
    """Everything a regeneration changes: the set of codes (its device and hashes), events."""
    return {
        "sets": list(StaticDevice.objects.filter(user=user).order_by("pk").values_list("pk", flat=True)),
        "codes": stored_hashes(user),
        "events": list(SecurityEvent.objects.filter(user=user).order_by("pk").values_list("event_type", "reason")),
    }


def stored_hashes(user: Any) -> list[str]:
    return sorted(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))


def regenerations() -> Any:
    return SecurityEvent.objects.filter(event_type="factor.recovery_codes.generated", reason="regenerated")


def test_a_regeneration_redirects_to_the_page_that_shows_its_codes_once(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    sign_in(client, totp_device)
    response = regenerate(client, page_token(client))
    assert response.status_code == 303 and response["Location"] == codes_page()
    assert not response.content  # the POST itself never shows codes
    stored = client.session[NEW_CODES_SESSION_KEY]

    page = client.get(response["Location"])
    assert page.status_code == 200 and page.context["codes"] == stored and len(stored) == 10
    assert stored_hashes(user) == sorted(recovery._hash(code) for code in stored)  # the codes now valid
    assert not recovery.still_valid(user, recovery_codes)  # the old ones are not
    assert regenerations().count() == 1

    again = client.get(response["Location"])  # shown once: a reload says so
    assert again.status_code == 200 and again.context["codes"] == [] and stored[0] not in again.content.decode()
    assert NEW_CODES_SESSION_KEY not in client.session


def test_a_double_submit_keeps_the_first_set_and_shows_it_once(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    sign_in(client, totp_device)
    token = page_token(client)
    first = regenerate(client, token)
    codes = client.session[NEW_CODES_SESSION_KEY]
    after_first = state(user)

    for _ in range(3):  # a double click, then retries
        repeat = regenerate(client, token)
        assert repeat.status_code == 303 and repeat["Location"] == first["Location"]
    assert state(user) == after_first  # no new set, no event
    assert regenerations().count() == 1
    assert client.session[NEW_CODES_SESSION_KEY] == codes  # the first regeneration's codes, kept

    assert client.get(first["Location"]).context["codes"] == codes
    assert stored_hashes(user) == sorted(recovery._hash(code) for code in codes)
    assert client.get(first["Location"]).context["codes"] == []  # and shown once


def test_a_repeat_after_the_codes_were_shown_shows_none(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    sign_in(client, totp_device)
    token = page_token(client)
    first = regenerate(client, token)
    assert client.get(first["Location"]).status_code == 200  # displayed
    before = state(user)

    replay = regenerate(client, token)
    assert replay.status_code == 303
    shown = client.get(replay["Location"])
    assert shown.status_code == 200 and shown.context["codes"] == []  # "already shown", no codes
    assert state(user) == before


def test_a_new_page_load_regenerates_again(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    sign_in(client, totp_device)
    first_token = page_token(client)
    first = client.get(regenerate(client, first_token)["Location"]).context["codes"]

    second_token = page_token(client)  # the page shown after the codes: a new form
    assert second_token != first_token
    second = client.get(regenerate(client, second_token)["Location"]).context["codes"]
    assert set(second).isdisjoint(first) and len(second) == 10
    assert stored_hashes(user) == sorted(recovery._hash(code) for code in second)
    assert not recovery.still_valid(user, first)
    assert regenerations().count() == 2


def refusals() -> list[tuple[str, str]]:
    return list(SecurityEvent.objects.filter(event_type="factor.recovery_codes.regenerate")
                .order_by("pk").values_list("outcome", "reason"))


def retired_key_token(user: Any, settings: Any) -> str:
    """A genuine form token, signed under a ``SECRET_KEY`` retired since (no longer a fallback):
    the nearest a form token comes to having expired."""
    current = settings.SECRET_KEY
    settings.SECRET_KEY = "retired-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-0123"
    try:
        return form_token(user)
    finally:
        settings.SECRET_KEY = current


@pytest.mark.parametrize(
    ("forged", "reason"),
    [
        ("missing", "form_token_invalid"),
        ("empty", "form_token_invalid"),
        ("edited", "form_token_invalid"),
        ("another use's", "form_token_invalid"),
        ("unsigned", "form_token_invalid"),
        ("too long", "form_token_invalid"),
        ("wrong length", "form_token_invalid"),
        ("retired key's", "form_token_invalid"),
        ("another user's", "form_token_of_another_user"),
    ],
)
def test_a_missing_forged_expired_or_foreign_token_is_a_recorded_refusal_that_changes_nothing(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], make_user: Any, frozen: Any,
    settings: Any, forged: str, reason: str,
) -> None:
    sign_in(client, totp_device)
    valid = page_token(client)
    payload = struct.pack(">QQ", user.pk, StaticDevice.objects.get(user=user).pk)
    tokens: dict[str, str | None] = {
        "missing": None,
        "empty": "",
        "edited": valid[:-2] + ("AA" if not valid.endswith("AA") else "BB"),
        "another user's": form_token(make_user("bob")),
        "another use's": dump(Purpose.DPOP_NONCE, payload),
        "unsigned": valid.split(".")[0],
        "too long": valid + "A" * 200,
        "wrong length": dump(Purpose.RECOVERY_REGENERATION, payload + b"\x00"),
        "retired key's": retired_key_token(user, settings),
    }
    before = state(user)

    response = regenerate(client, tokens[forged])
    assert response.status_code == 302 and response["Location"] == reverse("accounts:profile")
    assert [str(m) for m in get_messages(response.wsgi_request)] == [OUT_OF_DATE]
    after = state(user)
    assert after["sets"] == before["sets"] and after["codes"] == before["codes"]  # nothing replaced
    assert after["events"] == [*before["events"], ("factor.recovery_codes.regenerate", reason)]  # only the refusal
    assert refusals() == [("denied", reason)]
    event = SecurityEvent.objects.get(event_type="factor.recovery_codes.regenerate")
    assert event.user_id == user.pk and event.ip_address
    assert NEW_CODES_SESSION_KEY not in client.session
    assert recovery.still_valid(user, recovery_codes) == recovery_codes
    assert regenerate(client, valid).status_code == 303  # the real form still works
    assert len(refusals()) == 1


def test_the_refusal_reads_on_the_account_page(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    sign_in(client, totp_device)
    page = client.get(regenerate(client, "forged.token")["Location"])
    assert page.status_code == 200
    assert '<p class="error" role="status">' + OUT_OF_DATE.replace("'", "&#x27;") + "</p>" in page.content.decode()


def test_without_a_second_factor_nothing_is_made(client: Client, user: Any, frozen: Any) -> None:
    login_password(client)  # no factor yet: the profile shows no regenerate form
    assert 'id="recovery-regenerate"' not in client.get(PROFILE).content.decode()
    before = state(user)

    response = regenerate(client, form_token(user))  # the token a form would carry
    assert response.status_code == 302 and response["Location"] == reverse("accounts:profile")
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Add an authenticator app or a passkey first."]
    after = state(user)
    assert after["sets"] == before["sets"] == [] and after["codes"] == before["codes"] == []
    assert after["events"] == [*before["events"], ("factor.recovery_codes.regenerate", "no_second_factor")]
    assert refusals() == [("denied", "no_second_factor")]


def test_codes_replaced_from_another_browser_are_never_shown(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    """The first browser's answer is lost; the user regenerates in a second browser; the first
    browser's retry (its form names a set already replaced) and its codes page show nothing."""
    sign_in(client, totp_device)
    token = page_token(client)
    regenerate(client, token)  # codes kept in this session, not seen yet
    other = Client()
    frozen.shift(30)  # the next TOTP step: a code is accepted once
    sign_in(other, totp_device)
    assert len(other.get(regenerate(other, page_token(other))["Location"]).context["codes"]) == 10
    after_other = state(user)

    retry = regenerate(client, token)
    assert retry.status_code == 303 and state(user) == after_other  # a repeat: the other set stays
    shown = client.get(retry["Location"])
    assert shown.status_code == 302 and shown["Location"] == PROFILE  # replaced codes are not shown
    assert regenerations().count() == 2


def test_the_other_browsers_set_is_the_one_shown(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    sign_in(client, totp_device)
    token = page_token(client)
    other = Client()
    frozen.shift(30)
    sign_in(other, totp_device)
    other_token = page_token(other)  # both pages name the same set
    assert other_token == token

    regenerate(client, token)
    codes = client.session[NEW_CODES_SESSION_KEY]
    late = regenerate(other, other_token)  # the set it names is gone: nothing replaced
    assert late.status_code == 303 and stored_hashes(user) == sorted(recovery._hash(c) for c in codes)
    assert other.get(late["Location"]).status_code == 302  # the other browser is shown nothing
    assert client.get(codes_page()).context["codes"] == codes  # the first browser sees its codes
    assert regenerations().count() == 1


def test_the_form_still_needs_its_csrf_token(user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    login_password(client, csrfmiddlewaretoken=_csrf(client, reverse("accounts:login")))
    client.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(totp_device),
                                             "csrfmiddlewaretoken": _csrf(client, reverse("accounts:verify"))})
    token = page_token(client)
    before = state(user)

    assert regenerate(client, token).status_code == 403
    assert state(user) == before and NEW_CODES_SESSION_KEY not in client.session


def _csrf(client: Client, url: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', client.get(url).content.decode())
    assert found is not None
    return found.group(1)


def test_a_stale_sign_in_is_sent_to_sign_in_again(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    sign_in(client, totp_device)
    token = page_token(client)
    before = state(user)
    frozen.shift(app_settings.REAUTH_SECONDS + 1)

    response = regenerate(client, token)
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    assert state(user) == before and NEW_CODES_SESSION_KEY not in client.session


def test_a_page_shown_before_the_first_set_does_not_replace_a_set_made_since(
    client: Client, user: Any, totp_device: Any, frozen: Any
) -> None:
    """A page shown while the user had no codes names no set (0); a first set made since (by
    another path) is not replaced by it."""
    sign_in(client, totp_device)
    token = page_token(client)  # no codes yet
    recovery.generate(user, reason="first_factor")
    before = state(user)

    response = regenerate(client, token)
    assert response.status_code == 303 and state(user) == before
    assert regenerate(client, page_token(client)).status_code == 303 and regenerations().count() == 1


def test_a_session_write_failing_after_the_regeneration_undoes_it(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    """The new codes are made, but keeping them in the session for the codes page fails (the
    database went away): a 503 that changed nothing (the codes the user holds still work), and
    the same form sent again regenerates and shows the new codes. Committed apart, the user's
    codes were replaced by a set nobody would ever see, and the retry was a repeat showing none."""
    from core.outage_testing import database_down

    sign_in(client, totp_device)
    token = page_token(client)
    before = state(user)
    client.raise_request_exception = False  # the 503 is the answer under test
    with database_down(lambda sql: sql.lstrip().upper().startswith("UPDATE") and "django_session" in sql) as refused:
        failed = regenerate(client, token)
    assert refused and failed.status_code == 503
    assert state(user) == before
    assert recovery.still_valid(user, recovery_codes) == recovery_codes

    retry = regenerate(client, token)
    assert retry.status_code == 303 and retry["Location"] == codes_page()
    shown = client.get(retry["Location"]).context["codes"]
    assert len(shown) == app_settings.RECOVERY_CODE_COUNT and recovery.still_valid(user, shown) == shown
    assert regenerations().count() == 1


def test_a_session_signed_out_meanwhile_is_a_400_that_changes_nothing(
    client: Client, user: Any, totp_device: Any, recovery_codes: list[str], frozen: Any
) -> None:
    """The session is deleted (signed out from another browser) while the regeneration runs:
    its save in the regeneration's transaction finds no row. That is Django's answer for a
    session deleted before the request completed, a 400 (``SessionInterrupted``), never a 500,
    and the regeneration is undone: the codes the user holds still work."""
    from django.db import connection

    sign_in(client, totp_device)
    token = page_token(client)
    key = client.session.session_key
    before = state(user)

    def signed_out_first(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith("UPDATE") and "django_session" in sql:
            execute('DELETE FROM "django_session" WHERE "session_key" = %s', [key], False, context)
        return execute(sql, params, many, context)

    client.raise_request_exception = False
    with connection.execute_wrapper(signed_out_first):
        response = regenerate(client, token)
    assert response.status_code == 400
    assert state(user) == before
    assert recovery.still_valid(user, recovery_codes) == recovery_codes
