"""The login state machine the authorize endpoint relies on: acr/amr per path, step-up,
force re-authentication, MFA-required enrollment, throttling and no account enumeration."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import authstate
from accounts.tests.conftest import PASSWORD, code_for, confirmed_totp, login_password, session_auth, signed_in
from core.acr import ACR_MFA, ACR_PASSWORD, ACR_PHISHING_RESISTANT, acr_for_amr, normalise_amr
from core.models import SecurityEvent

pytestmark = pytest.mark.django_db

NEXT = "/authorize?client_id=app&response_type=code"


def login_url(**params: str) -> str:
    return reverse("accounts:login") + "?" + urlencode(params)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.mark.parametrize(
    ("amr", "acr"),
    [
        (["pwd"], ACR_PASSWORD),
        (["pwd", "otp"], ACR_MFA),
        (["hwk", "user"], ACR_PHISHING_RESISTANT),
        (["swk", "user"], ACR_PHISHING_RESISTANT),
        (["pwd", "hwk", "user"], ACR_PHISHING_RESISTANT),
        (["hwk"], ACR_PASSWORD),
    ],
)
def test_acr_for_amr(amr: list[str], acr: str) -> None:
    assert acr_for_amr(normalise_amr(amr)) == acr


def test_password_only_login(client: Any, user: Any) -> None:
    response = login_password(client, next=NEXT)
    assert response.status_code == 302 and response.url == NEXT
    auth = signed_in(client)
    assert auth["amr"] == ["pwd"]
    assert SecurityEvent.objects.filter(event_type="login.password", outcome="success").exists()


def test_external_next_is_ignored(client: Any, user: Any) -> None:
    response = login_password(client, next="https://evil.example/steal")
    assert response.url == reverse("accounts:profile")


def test_unknown_user_and_wrong_password_look_the_same(client: Any, user: Any) -> None:
    wrong = login_password(client, password="not the password")
    unknown = login_password(client, username="nobody")
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.context["error"] == unknown.context["error"]


def test_logged_in_user_goes_straight_to_next(client: Any, user: Any) -> None:
    login_password(client)
    response = client.get(login_url(next=NEXT))
    assert response.status_code == 302 and response.url == NEXT


def test_force_makes_the_user_authenticate_again(client: Any, user: Any, frozen: Any) -> None:
    login_password(client)
    first = signed_in(client)
    frozen.shift(120)
    page = client.get(login_url(next=NEXT, force="1"))
    assert page.status_code == 200 and "password" in page.content.decode()
    response = login_password(client, next=NEXT)
    assert response.url == NEXT
    again = signed_in(client)
    assert again["auth_time"] == first["auth_time"] + 120
    assert again["sid"] == first["sid"]


def test_step_up_to_mfa_with_totp(client: Any, user: Any, frozen: Any) -> None:
    login_password(client)  # password only: the user has no second factor yet
    device = confirmed_totp(user)  # e.g. enrolled from another session
    sid = signed_in(client)["sid"]
    response = client.get(login_url(next=NEXT, acr=ACR_MFA))
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:verify"))
    page = client.get(response.url)
    assert page.context["step_up"] is True
    done = client.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(device), "next": NEXT,
                                                   "acr": ACR_MFA})
    final = client.get(done.url)
    assert final.url == NEXT
    auth = signed_in(client)
    assert auth["amr"] == ["mfa", "otp", "pwd"] and auth["sid"] == sid


def test_acr_mfa_without_second_factor_goes_to_enrollment(client: Any, user: Any, frozen: Any) -> None:
    response = login_password(client, next=NEXT, acr=ACR_MFA)
    assert response.url.startswith(reverse("accounts:mfa_setup"))
    continue_url = query(response.url)["next"]
    assert query(continue_url) == {"next": NEXT, "acr": ACR_MFA}
    assert signed_in(client)["amr"] == ["pwd"]

    # enroll TOTP: the confirming code counts as the second factor, then back to next
    client.get(reverse("accounts:totp_enroll") + "?" + urlencode({"next": continue_url}))
    device = TOTPDevice.objects.get(user=user)
    confirmed = client.post(reverse("accounts:totp_enroll"), {"code": code_for(device), "next": continue_url})
    assert confirmed.status_code == 303
    page = client.get(confirmed["Location"])
    assert len(page.context["codes"]) == 10 and page.context["next"] == continue_url
    final = client.get(continue_url)
    assert final.status_code == 302 and final.url == NEXT
    assert acr_for_amr(signed_in(client)["amr"]) == ACR_MFA


@pytest.mark.parametrize("how", ["user_flag", "global_setting"])
def test_policy_requires_enrollment(client: Any, make_user: Any, settings: Any, how: str) -> None:
    if how == "user_flag":
        make_user(require_mfa=True)
    else:
        make_user()
        settings.IDP_REQUIRE_MFA = True
    response = login_password(client, next=NEXT)
    assert response.url.startswith(reverse("accounts:mfa_setup"))
    assert query(response.url)["kind"] == "any"


def test_phishing_resistant_needs_a_passkey(client: Any, user: Any, make_passkey: Any, frozen: Any) -> None:
    response = login_password(client, next=NEXT, acr=ACR_PHISHING_RESISTANT)
    assert response.url.startswith(reverse("accounts:mfa_setup"))
    assert query(response.url)["kind"] == "passkey"
    make_passkey(user)
    stepped = client.get(login_url(next=NEXT, acr=ACR_PHISHING_RESISTANT))
    assert stepped.url.startswith(reverse("accounts:verify"))
    page = client.get(stepped.url)
    assert page.context["methods"] == ("passkey",)


def test_step_up_refused_when_only_a_password_is_available(client: Any, user: Any) -> None:
    """An MFA request never completes on a password alone: the session stays at password level."""
    login_password(client)
    response = client.get(login_url(next=NEXT, acr=ACR_MFA))
    assert not response.url.startswith(NEXT)
    assert response.url.startswith(reverse("accounts:mfa_setup"))
    assert acr_for_amr(signed_in(client)["amr"]) == ACR_PASSWORD


def test_user_with_totp_cannot_skip_second_step(client: Any, user: Any, totp_device: TOTPDevice) -> None:
    login_password(client, next=NEXT)
    assert client.get(NEXT.replace("/authorize", "/accounts/")).status_code in (302, 404)
    assert session_auth(client) is None
    direct = client.get(login_url(next=NEXT))
    assert direct.status_code == 200  # still the password form: nothing established


def test_authstate_api_for_the_authorize_endpoint(rf: Any, client: Any, user: Any, frozen: Any) -> None:
    login_password(client)
    request = rf.get("/")
    request.session = client.session
    request.user = user
    state = authstate.current(request)
    assert state is not None and state.acr == ACR_PASSWORD and state.user_id == user.pk
    assert state.auth_datetime.timestamp() == state.auth_time


def test_pending_login_expires(client: Any, user: Any, totp_device: TOTPDevice, frozen: Any) -> None:
    login_password(client)
    frozen.shift(301)
    response = client.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(totp_device)})
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))
    assert session_auth(client) is None


def test_login_page_has_csp_and_autofill(client: Any) -> None:
    page = client.get(reverse("accounts:login"))
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    assert "script-src 'self'" in page["Content-Security-Policy"]
    body = page.content.decode()
    assert 'autocomplete="username webauthn"' in body
    assert 'name="username"' in body and 'name="password"' in body and "csrfmiddlewaretoken" in body
    assert PASSWORD not in body


def test_query_budgets(client: Any, user: Any, rf: Any, django_assert_max_num_queries: Any,
                       django_assert_num_queries: Any) -> None:
    with django_assert_max_num_queries(20):
        login_password(client, next=NEXT)
    request = rf.get("/")
    request.session = client.session
    request.user = user
    assert "vigil_auth" in request.session  # loads the session (the middleware does that anyway)
    with django_assert_num_queries(0):  # the authorize endpoint reads this on every request
        authstate.current(request)
    with django_assert_max_num_queries(8):
        client.get(login_url(next=NEXT))


def test_factors_reset_during_the_second_step_starts_over(client: Any, user: Any, totp_device: Any) -> None:
    from accounts.flows import factors

    login_password(client, next=NEXT)
    factors.reset_all(user)
    response = client.get(reverse("accounts:verify") + "?" + urlencode({"next": NEXT}))
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))
    assert session_auth(client) is None


def test_the_code_just_accepted_typed_again_is_refused_but_counts_nothing(user: Any, totp_device: Any,
                                                                          frozen: Any) -> None:
    """The second step's answer is lost with the session cookie it carried (a sign-in renews the
    session id): the browser's retry finds no half-done sign-in and is sent to sign in again.
    The code the app still shows was accepted moments ago: refused, as a used code must be (RFC
    6238 §5.2), in words that say so, and recorded, but no guess: typed again and again it grows
    no delay and counts no failure against the user. The app's next code signs in."""
    from django.conf import settings
    from django.test import Client

    first, browser = Client(), Client()
    login_password(first, next=NEXT)
    browser.cookies[settings.SESSION_COOKIE_NAME] = first.cookies[settings.SESSION_COOKIE_NAME].value
    code, verify = code_for(totp_device), reverse("accounts:verify") + "?" + urlencode({"next": NEXT})
    assert first.post(verify, {"method": "totp", "code": code, "next": NEXT}).status_code == 302  # the answer lost

    retry = browser.post(verify, {"method": "totp", "code": code, "next": NEXT})
    assert retry.status_code == 302 and retry["Location"].startswith(reverse("accounts:login"))
    assert login_password(browser, next=NEXT)["Location"].startswith(reverse("accounts:verify"))
    for _ in range(8):  # more than the free failures
        again = browser.post(verify, {"method": "totp", "code": code, "next": NEXT})
        assert again.status_code == 400 and "That code was just used." in again.content.decode()
    assert not SecurityEvent.objects.filter(event_type="login.second_factor", outcome="failure").exists()
    assert not SecurityEvent.objects.filter(event_type="login.second_factor", reason="throttled").exists()
    assert SecurityEvent.objects.filter(event_type="login.second_factor", outcome="denied", reason="code_reused",
                                        user=user).count() == 8
    assert session_auth(browser) is None

    frozen.shift(30)
    done = browser.post(verify, {"method": "totp", "code": code_for(totp_device), "next": NEXT})
    assert done.status_code == 302 and signed_in(browser)["amr"] == ["mfa", "otp", "pwd"]


def test_a_password_changed_during_the_second_step_ends_that_sign_in(user: Any, totp_device: Any, frozen: Any) -> None:
    """The password proof of a half-done sign-in (someone holding the old password, waiting for
    a code) is stale once the password changes, as Django ends signed-in sessions then: the
    second factor alone must not finish it."""
    from django.test import Client

    intruder, owner = Client(), Client()
    assert login_password(intruder, next=NEXT)["Location"].startswith(reverse("accounts:verify"))
    login_password(owner)
    assert owner.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(totp_device)}).status_code == 302
    new_password = "a different long passphrase 7"
    changed = owner.post(reverse("accounts:password_change"), {
        "old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password})
    assert changed.status_code == 302
    used_step = type(totp_device).objects.get(pk=totp_device.pk).last_t
    frozen.shift(30)  # the next TOTP step: a code the intruder could have
    before = SecurityEvent.objects.filter(event_type="login.completed").count()
    response = intruder.post(reverse("accounts:verify") + "?" + urlencode({"next": NEXT}),
                             {"method": "totp", "code": code_for(totp_device)})
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    assert session_auth(intruder) is None and "vigil_pending" not in intruder.session
    assert intruder.get(reverse("accounts:profile")).status_code == 302
    assert SecurityEvent.objects.filter(event_type="login.completed").count() == before
    assert SecurityEvent.objects.filter(event_type="login.second_factor", outcome="denied",
                                        reason="password_changed", user=user).count() == 1
    assert type(totp_device).objects.get(pk=totp_device.pk).last_t == used_step  # the code was not spent
