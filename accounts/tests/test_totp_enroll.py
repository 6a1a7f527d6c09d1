"""Confirming an authenticator app once, however often the browser sends it
(``accounts/flows/totp_enroll.py``): Post/Redirect/Get to the page that shows the recovery
codes once; the same confirmation sent again lands there too and changes nothing; a wrong
code is still a throttled, recorded failure."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticToken

from accounts.flows import recovery, totp
from accounts.flows.recovery_display import NEW_CODES_SESSION_KEY
from accounts.flows.totp import REPEAT_WINDOW
from accounts.models import SealedTOTPDevice
from accounts.tests.conftest import code_for, login_password, signed_in
from core.models import SecurityEvent
from core.outage_testing import database_down

pytestmark = pytest.mark.django_db

PROFILE = "/accounts/"
ALREADY_SET_UP = (
    "That code is from the authenticator app you already set up, which still works: nothing was changed. "
    "To replace it, enter a code for the new key instead."
)


def codes_page() -> str:
    return reverse("accounts:recovery_codes") + "?next=%2Faccounts%2F"


def start(client: Client, user: Any) -> SealedTOTPDevice:
    """Signed in with a password, on the set-up page: the pending device it shows."""
    login_password(client)
    assert client.get(reverse("accounts:totp_enroll")).status_code == 200
    return SealedTOTPDevice.objects.get(user=user, confirmed=False)


def confirm(client: Client, code: str) -> Any:
    return client.post(reverse("accounts:totp_enroll"), {"code": code})


def wrong_code(device: SealedTOTPDevice) -> str:
    return "000000" if code_for(device) != "000000" else "111111"


def state(user: Any) -> dict[str, Any]:
    """Everything a confirmation changes: devices and their secrets, recovery codes, events."""
    return {
        "devices": list(SealedTOTPDevice.objects.filter(user=user).order_by("pk")
                        .values_list("pk", "confirmed", "key", "last_t", "last_used_at")),
        "codes": sorted(StaticToken.objects.filter(device__user=user).values_list("token", flat=True)),
        "events": list(SecurityEvent.objects.filter(user=user).order_by("pk").values_list("event_type", "outcome")),
    }


def enroll_failures(**filters: Any) -> Any:
    return SecurityEvent.objects.filter(event_type="factor.totp.enroll", **filters)


def test_a_confirmation_redirects_to_the_page_that_shows_its_codes_once(client: Client, user: Any, frozen: Any) -> None:
    device = start(client, user)
    response = confirm(client, code_for(device))
    assert response.status_code == 303 and response["Location"] == codes_page()
    assert not response.content  # the POST itself never shows codes
    stored = client.session[NEW_CODES_SESSION_KEY]

    page = client.get(response["Location"])
    assert page.status_code == 200 and page.context["codes"] == stored and len(stored) == 10
    assert state(user)["codes"] == sorted(recovery._hash(code) for code in stored)  # the codes now valid
    assert signed_in(client)["amr"] == ["mfa", "otp", "pwd"]

    again = client.get(response["Location"])  # shown once: a reload says so
    assert again.status_code == 200 and again.context["codes"] == [] and stored[0] not in again.content.decode()
    assert NEW_CODES_SESSION_KEY not in client.session


def test_a_double_submit_ends_on_the_codes_page_once_and_changes_nothing(
    client: Client, user: Any, frozen: Any
) -> None:
    device = start(client, user)
    code = code_for(device)
    first = confirm(client, code)
    codes = client.session[NEW_CODES_SESSION_KEY]
    after_first = state(user)

    for _ in range(6):  # more than the free failures: a repeat is no guess, nothing is counted
        repeat = confirm(client, code)
        assert repeat.status_code == 303 and repeat["Location"] == first["Location"]
    assert state(user) == after_first  # no new device or secret, no new codes, no event
    assert not enroll_failures().exists()  # neither a failure nor a throttling refusal
    assert SecurityEvent.objects.filter(event_type="factor.totp.enrolled").count() == 1

    assert client.session[NEW_CODES_SESSION_KEY] == codes  # the first confirmation's codes, kept
    assert client.get(first["Location"]).context["codes"] == codes
    assert client.get(first["Location"]).context["codes"] == []  # and shown once


def test_a_replay_after_the_codes_were_shown_shows_none(client: Client, user: Any, frozen: Any) -> None:
    device = start(client, user)
    code = code_for(device)
    first = confirm(client, code)
    assert client.get(first["Location"]).status_code == 200  # displayed
    before = state(user)

    replay = confirm(client, code)
    assert replay.status_code == 303
    shown = client.get(replay["Location"])
    assert shown.status_code == 200 and shown.context["codes"] == []  # "already shown", no codes
    assert state(user) == before and not enroll_failures().exists()


def test_no_other_session_sees_the_codes(client: Client, user: Any, frozen: Any) -> None:
    other = Client()  # another browser of the same user, signed in with the password before
    login_password(other)
    device = start(client, user)
    code = code_for(device)
    first = confirm(client, code)
    before = state(user)

    peek = other.get(first["Location"])
    assert peek.status_code == 302 and peek["Location"] == PROFILE
    replay = confirm(other, code)  # a password-only session, now that the user has a second factor
    assert replay.status_code == 302 and replay["Location"].startswith(reverse("accounts:login"))
    assert state(user) == before
    assert len(client.get(first["Location"]).context["codes"]) == 10  # still there for the one that confirmed


def test_a_retry_with_the_cookie_from_before_the_step_up_is_safe(client: Client, user: Any, frozen: Any) -> None:
    """The confirmation renews the session id (``authstate.add_methods``): a retry that still
    carries the old cookie is signed out, and changes nothing."""
    device = start(client, user)
    stale = Client()
    stale.cookies[settings.SESSION_COOKIE_NAME] = client.cookies[settings.SESSION_COOKIE_NAME].value
    code = code_for(device)
    first = confirm(client, code)
    before = state(user)

    retry = confirm(stale, code)
    assert retry.status_code == 302 and retry["Location"].startswith(reverse("accounts:login"))
    assert state(user) == before and not enroll_failures().exists()
    assert len(client.get(first["Location"]).context["codes"]) == 10


def test_a_lost_answer_retried_signs_in_again_and_the_apps_code_is_no_wrong_code(
    client: Client, user: Any, frozen: Any
) -> None:
    """The confirmation commits, but its answer is lost with the new session cookie it carried
    (``authstate.add_methods`` renews the session id): the browser keeps the old cookie. Its
    retry is sent to sign in, changing nothing. Signed in again with the new app, the browser is
    back on the set-up page, which shows a new secret, and the user types the code their app
    shows: that app is set up, so the code is no wrong guess (no failure, nothing counted against
    the user, nothing changed) and the browser goes on."""
    device = start(client, user)
    browser = Client()  # holds the cookie from before the answer that was lost
    browser.cookies[settings.SESSION_COOKIE_NAME] = client.cookies[settings.SESSION_COOKIE_NAME].value
    code = code_for(device)
    assert confirm(client, code).status_code == 303  # committed; the answer never reaches the browser

    retry = confirm(browser, code)
    assert retry.status_code == 302 and retry["Location"].startswith(reverse("accounts:login"))
    assert not enroll_failures().exists()
    setup = reverse("accounts:totp_enroll")
    assert login_password(browser, next=setup)["Location"].startswith(reverse("accounts:verify"))
    frozen.shift(30)  # the app's next code signs in
    verified = browser.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(device), "next": setup})
    assert browser.get(verified["Location"])["Location"] == setup
    page = browser.get(setup)
    assert page.status_code == 200 and page.context["secret"] != totp.secret_base32(device)  # a new secret
    before = state(user)

    for _ in range(2):  # the code just used to sign in, then the app's next one
        answer = confirm(browser, code_for(device))
        assert answer.status_code == 303, answer.status_code
        assert browser.get(answer["Location"])["Location"] == PROFILE  # no codes to show here: on
        assert ALREADY_SET_UP in browser.get(PROFILE).content.decode()  # and told why
        frozen.shift(30)
    after = state(user)
    assert not enroll_failures(outcome="failure").exists()  # no failure
    assert not enroll_failures(reason="throttled").exists()  # nor a throttling refusal
    assert after["codes"] == before["codes"]
    assert after["events"] == [*before["events"], *[("factor.totp.enroll", "denied")] * 2]  # each on record
    assert SealedTOTPDevice.objects.get(user=user, confirmed=True).pk == device.pk
    assert signed_in(browser)["amr"] == ["mfa", "otp", "pwd"]


def signed_in_with_app(client: Client, device: SealedTOTPDevice) -> None:
    """Password and the app: recent enough, and multi-factor, to change factors."""
    login_password(client)
    assert client.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(device)}).status_code == 302


def test_a_code_of_the_app_already_set_up_is_a_recorded_refusal_that_changes_nothing(
    client: Client, user: Any, totp_device: SealedTOTPDevice, recovery_codes: list[str], frozen: Any
) -> None:
    """A user whose app is set up starts setting one up again (the page shows a new key) and
    types the code their app shows: the app they have stays, the new key stays unconfirmed,
    the browser is sent on and told so, and the decision is recorded (``denied``,
    ``already_set_up``) without counting as a wrong guess."""
    signed_in_with_app(client, totp_device)
    page = client.get(reverse("accounts:totp_enroll"))
    pending = SealedTOTPDevice.objects.get(user=user, confirmed=False)
    assert page.context["secret"] == totp.secret_base32(pending) != totp.secret_base32(totp_device)
    frozen.shift(30)  # the app's next code: one it never accepted
    before = state(user)

    answer = confirm(client, code_for(totp_device))
    assert answer.status_code == 303 and answer["Location"] == codes_page()
    assert client.get(answer["Location"])["Location"] == PROFILE  # no codes to show: on
    profile = client.get(PROFILE).content.decode()
    assert f'<p class="muted" role="status">{ALREADY_SET_UP}</p>' in profile

    after = state(user)
    assert after["codes"] == before["codes"] and recovery.still_valid(user, recovery_codes) == recovery_codes
    devices = {pk: confirmed for pk, confirmed, *_ in after["devices"]}
    assert devices == {totp_device.pk: True, pending.pk: False}  # no new device, none confirmed
    assert [d[:3] for d in after["devices"]] == [d[:3] for d in before["devices"]]  # same keys
    assert after["events"] == [*before["events"], ("factor.totp.enroll", "denied")]
    event = enroll_failures().get()
    assert (event.outcome, event.reason, event.user_id) == ("denied", "already_set_up", user.pk)
    assert not SecurityEvent.objects.filter(event_type="factor.totp.enrolled").exists()
    assert NEW_CODES_SESSION_KEY not in client.session


def test_codes_of_the_app_already_set_up_are_never_counted_as_wrong_guesses(
    client: Client, user: Any, totp_device: SealedTOTPDevice, recovery_codes: list[str], frozen: Any
) -> None:
    """More than the free failures, each a fresh code of the app already set up: each is a
    recorded ``already_set_up`` refusal, none a failure, none throttled; the new key still
    confirms afterwards."""
    signed_in_with_app(client, totp_device)
    assert client.get(reverse("accounts:totp_enroll")).status_code == 200
    pending = SealedTOTPDevice.objects.get(user=user, confirmed=False)
    for _ in range(7):
        frozen.shift(30)
        assert confirm(client, code_for(totp_device)).status_code == 303
    assert enroll_failures(outcome="denied", reason="already_set_up").count() == 7
    assert not enroll_failures().exclude(reason="already_set_up").exists()

    confirmed = confirm(client, code_for(pending))
    assert confirmed.status_code == 303
    assert SealedTOTPDevice.objects.get(user=user, confirmed=True).pk == pending.pk  # the old app replaced


def test_wrong_codes_are_throttled_recorded_failures_that_change_nothing(
    client: Client, user: Any, frozen: Any
) -> None:
    device = start(client, user)
    secret = client.get(reverse("accounts:totp_enroll")).context["secret"]
    before = state(user)

    for _ in range(2):
        response = confirm(client, wrong_code(device))
        assert response.status_code == 400 and response.context["secret"] == secret  # the same secret
        assert 'id="totp-error"' in response.content.decode()
    failures = enroll_failures(outcome="failure", reason="bad_code")
    assert failures.count() == 2 and all("next_attempt_delay" in e.details for e in failures)
    assert state(user)["devices"] == before["devices"] and not state(user)["codes"]
    assert NEW_CODES_SESSION_KEY not in client.session

    for _ in range(8):
        confirm(client, wrong_code(device))
    assert enroll_failures(outcome="denied", reason="throttled").exists()
    assert not SealedTOTPDevice.objects.filter(user=user, confirmed=True).exists()


def test_a_wrong_code_after_the_confirmation_is_still_a_failure(client: Client, user: Any, frozen: Any) -> None:
    device = start(client, user)
    first = confirm(client, code_for(device))
    codes = client.session[NEW_CODES_SESSION_KEY]

    response = confirm(client, wrong_code(device))
    assert response.status_code == 400  # the page to set up (another) app, with its error
    assert enroll_failures(outcome="failure", reason="bad_code").count() == 1
    assert SealedTOTPDevice.objects.get(user=user, confirmed=True).pk == device.pk
    assert client.get(first["Location"]).context["codes"] == codes  # the codes are not lost


def test_the_same_code_long_after_is_no_repeat(client: Client, user: Any, frozen: Any) -> None:
    device = start(client, user)
    code = code_for(device)
    confirm(client, code)
    frozen.shift(REPEAT_WINDOW.total_seconds() + 1)

    late = confirm(client, code)
    assert late.status_code == 400
    assert enroll_failures(outcome="failure", reason="bad_code").count() == 1
    assert SealedTOTPDevice.objects.get(user=user, confirmed=True).pk == device.pk


def _session_insert(sql: str) -> bool:
    return sql.lstrip().upper().startswith("INSERT") and "django_session" in sql


def test_a_session_write_failing_after_the_check_undoes_the_confirmation(
    client: Client, user: Any, frozen: Any
) -> None:
    """The code is right, but writing the renewed session (its proof and the first codes) fails
    (the database went away): a 503 that changed nothing, so the retry, with the same cookie
    and code, confirms the app, shows its codes and proves it; no failure is counted. Were the
    confirmation committed apart, the retry would meet a confirmed app, codes nobody saw and a
    password-only session sent to prove the app it had just set up."""
    device = start(client, user)
    code = code_for(device)
    before = state(user)
    with database_down(_session_insert) as refused:
        failed = confirm(client, code)
    assert refused and failed.status_code == 503 and failed["Retry-After"]
    assert state(user) == before  # no app confirmed, no codes, no event, the step not spent

    retry = confirm(client, code)
    assert retry.status_code == 303 and retry["Location"] == codes_page()
    assert len(client.get(retry["Location"]).context["codes"]) == 10
    assert signed_in(client)["amr"] == ["mfa", "otp", "pwd"]
    assert SealedTOTPDevice.objects.get(user=user, confirmed=True).pk == device.pk
    assert not enroll_failures().exists()
