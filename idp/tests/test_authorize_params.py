"""Authorization request parameters: OIDC Core §3.1.2.1 (``prompt``, ``max_age``), §3.1.2.6
(``request`` / ``request_uri`` refused, ``account_selection_required``) and RFC 6749 §4.1.2.1
(errors go back to a valid redirect URI, never to an invalid one)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import BrowserSession
from core.models import SecurityEvent
from sessions.models import AuthorizationCode

from .conftest import MOBILE_REDIRECT, PASSWORD, authorize_params, query_of

pytestmark = pytest.mark.django_db


def _get(http, params):
    return http.get(f"{reverse('authorize')}?{urlencode(params)}")


def _error(response) -> str:
    assert response.status_code == 302, response.content[:500]
    assert response["Location"].startswith(MOBILE_REDIRECT + "?")
    return query_of(response["Location"])["error"]


# --- max_age: ASCII digits within bounds (item: '²' gave a 500) -----------------------------

@pytest.mark.parametrize("value", ["²", "٣", "5²", "-5", "+5", " 5", "5 ", "5.0", "1e3", "0x10", "99999999999", "2147483648"])
def test_bad_max_age_is_invalid_request_redirect_and_issues_nothing(browser, mobile_client, pkce, value):
    params = authorize_params(mobile_client.client.client_id, pkce, max_age=value)
    response = _get(browser, params)
    assert _error(response) == "invalid_request"
    query = query_of(response["Location"])
    assert query["state"] == params["state"] and "max_age" in query["error_description"]
    assert not AuthorizationCode.objects.exists()
    assert SecurityEvent.objects.filter(event_type="oauth.authorize_error", reason="invalid_request").exists()


@pytest.mark.parametrize("value", ["0", "2147483647", "600"])
def test_max_age_in_bounds_is_accepted(browser, mobile_client, pkce, value):
    response = _get(browser, authorize_params(mobile_client.client.client_id, pkce, max_age=value))
    assert response.status_code == 302
    location = response["Location"]
    # 0 may demand a fresh login (the session is at least as old as this second); never an error.
    assert "error=" not in location


def test_bad_max_age_with_unknown_client_or_redirect_never_redirects(browser, mobile_client, pkce):
    unknown = _get(browser, authorize_params("nope", pkce, max_age="²"))
    assert unknown.status_code == 400 and "Location" not in unknown
    evil = _get(browser, authorize_params(mobile_client.client.client_id, pkce, max_age="²",
                                          redirect_uri="https://evil.example/cb"))
    assert evil.status_code == 400 and "Location" not in evil


# --- request objects: unsigned ones and request_uri values /par did not issue are refused ---------
# (RFC 9101 section 6.3 codes; the accepted ones are tried in test_par_jar.py)

@pytest.mark.parametrize(("name", "error"), [("request", "invalid_request_object"),
                                              ("request_uri", "invalid_request_uri")])
def test_request_objects_are_refused(browser, mobile_client, pkce, name, error, settings):
    params = authorize_params(mobile_client.client.client_id, pkce, **{name: "eyJhbGciOiJub25lIn0.e30."})
    response = _get(browser, params)
    assert _error(response) == error
    query = query_of(response["Location"])
    assert query["state"] == params["state"] and query["iss"] == settings.IDP_ISSUER
    assert not AuthorizationCode.objects.exists()


def test_request_object_refused_before_other_checks(client, mobile_client, pkce):
    """Parameters may live only inside the pushed request: say the request_uri is unknown,
    not 'PKCE missing'."""
    params = {"client_id": mobile_client.client.client_id, "redirect_uri": MOBILE_REDIRECT, "response_type": "code",
              "request_uri": "urn:ietf:params:oauth:request_uri:abc"}
    assert _error(_get(client, params)) == "invalid_request_uri"


def test_request_object_with_bad_redirect_or_client_never_redirects(browser, mobile_client, pkce):
    bad_redirect = authorize_params(mobile_client.client.client_id, pkce, request="x.y.z",
                                    redirect_uri="https://evil.example/cb")
    response = _get(browser, bad_redirect)
    assert response.status_code == 400 and "Location" not in response
    response = _get(browser, authorize_params("nope", pkce, request="x.y.z"))
    assert response.status_code == 400 and "Location" not in response


# --- prompt -----------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt", ["none login", "none consent", "none login consent", "none select_account login",
                                    "create", "bogus", "login bogus"])
def test_invalid_prompt_combinations(browser, mobile_client, pkce, prompt):
    response = _get(browser, authorize_params(mobile_client.client.client_id, pkce, prompt=prompt))
    assert _error(response) == "invalid_request"
    # The description says what to send instead: the supported values, or none alone.
    assert "select_account" in query_of(response["Location"])["error_description"] or prompt.startswith("none")
    assert "alone" in query_of(response["Location"])["error_description"] or not prompt.startswith("none")
    assert not AuthorizationCode.objects.exists()


@pytest.mark.parametrize("response_type", ["token", "id_token", "code id_token", None])
def test_unsupported_response_type_says_what_to_send(browser, mobile_client, pkce, response_type):
    """Authlib described this error with the bare value sent ("token"), or not at all."""
    params = authorize_params(mobile_client.client.client_id, pkce, response_type=response_type)  # None: left out
    response = _get(browser, params)
    assert _error(response) == "unsupported_response_type"
    query = query_of(response["Location"])
    assert query["error_description"] == "Only response_type=code is supported." and query["state"] == params["state"]
    assert not AuthorizationCode.objects.exists()


def test_prompt_none_with_select_account_is_account_selection_required(browser, mobile_client, pkce):
    response = _get(browser, authorize_params(mobile_client.client.client_id, pkce, prompt="none select_account"))
    assert _error(response) == "account_selection_required"
    assert not AuthorizationCode.objects.exists()


def test_prompt_consent_shows_consent_even_for_first_party(browser, mobile_client, pkce):
    page = _get(browser, authorize_params(mobile_client.client.client_id, pkce, prompt="consent"))
    assert page.status_code == 200 and b"wants to access your account" in page.content
    assert not AuthorizationCode.objects.exists()


def test_prompt_login_and_consent_together(browser, mobile_client, pkce):
    response = _get(browser, authorize_params(mobile_client.client.client_id, pkce, prompt="login consent"))
    assert response["Location"].startswith(reverse("accounts:login")) and "force=1" in response["Location"]


def test_empty_prompt_is_no_prompt(browser, mobile_client, pkce):
    assert "code" in query_of(_get(browser, authorize_params(mobile_client.client.client_id, pkce, prompt=""))["Location"])


# --- prompt=select_account --------------------------------------------------------------------

@pytest.fixture
def bob(db):
    account = get_user_model()(username="bob", email="bob@example.com")
    account.set_password(PASSWORD)
    account.save()
    return account


def test_select_account_shows_who_is_signed_in(browser, mobile_client, pkce):
    page = _get(browser, authorize_params(mobile_client.client.client_id, pkce, prompt="select_account"))
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="signed-in-as">alice<' in body
    assert "Continue as alice" in body and "Use another account" in body
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    assert not AuthorizationCode.objects.exists()


def test_select_account_continue_issues_the_code_for_the_same_user(browser, mobile_client, pkce, user):
    params = authorize_params(mobile_client.client.client_id, pkce, prompt="select_account")
    url = f"{reverse('authorize')}?{urlencode(params)}"
    response = browser.post(url, {"account": "continue"})
    query = query_of(response["Location"])
    assert "code" in query and query["state"] == params["state"]
    assert AuthorizationCode.objects.get().user == user
    assert SecurityEvent.objects.filter(event_type="oauth.account_selected", user=user).exists()


def test_select_account_switch_signs_out_then_another_user_signs_in(browser, mobile_client, pkce, user, bob):
    params = authorize_params(mobile_client.client.client_id, pkce, prompt="select_account")
    url = f"{reverse('authorize')}?{urlencode(params)}"
    assert BrowserSession.objects.filter(user=user, ended_at__isnull=True).count() == 1
    switched = browser.post(url, {"account": "switch"})
    assert switched.status_code == 302 and switched["Location"].startswith(reverse("accounts:login"))
    assert not AuthorizationCode.objects.exists()
    assert BrowserSession.objects.filter(user=user, ended_at__isnull=True).count() == 0
    assert SecurityEvent.objects.filter(event_type="oauth.account_switched", user=user).exists()
    login_page = browser.get(switched["Location"])
    assert login_page.status_code == 200 and b'name="password"' in login_page.content  # signed out: the form
    login = browser.post(switched["Location"], {"username": "bob", "password": PASSWORD,
                                                "next": query_of(switched["Location"])["next"]})
    assert login.status_code == 302
    back = browser.get(login["Location"])
    assert "code" in query_of(back["Location"]), back.content[:500]  # chosen once, not asked again
    assert AuthorizationCode.objects.get().user == bob


def test_select_account_without_a_session_goes_to_login(client, mobile_client, pkce):
    response = _get(client, authorize_params(mobile_client.client.client_id, pkce, prompt="select_account"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


def test_select_account_choice_needs_csrf(browser, user, mobile_client, pkce):
    http = browser
    http.handler.enforce_csrf_checks = True
    params = authorize_params(mobile_client.client.client_id, pkce, prompt="select_account")
    url = f"{reverse('authorize')}?{urlencode(params)}"
    forged = http.post(url, {"account": "switch"})
    assert forged.status_code == 403
    assert BrowserSession.objects.filter(user=user, ended_at__isnull=True).count() == 1


# --- the consent page speaks to people, not in scope names -------------------------------------

def test_consent_page_describes_scopes(client, user, service_client, pkce):
    client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    params = authorize_params(service_client.client.client_id, pkce, redirect_uri="https://service.example.com/callback",
                              scope="openid email offline_access orders.read")
    page = _get(client, params).content.decode()
    listed = page[page.index('<ul id="scopes">'):page.index("</ul>")]
    assert "See your email address" in listed and "Stay signed in while you are not using it" in listed
    assert "<li>email</li>" not in listed and "<li>offline_access</li>" not in listed
    assert "orders.read" in listed and "(defined by Service)" in listed


# --- OIDC Core §3.1.2.1: the authorization endpoint accepts POST too ---------------------------

def test_posted_authorization_request_works_like_get(browser, mobile_client, pkce, user):
    from .conftest import form_post

    browser.handler.enforce_csrf_checks = True  # a relying party's page has no CSRF token of ours
    params = authorize_params(mobile_client.client.client_id, pkce)
    posted = form_post(browser, reverse("authorize"), params)
    assert posted.status_code == 303 and posted["Location"].startswith(reverse("authorize") + "?")
    answered = browser.get(posted["Location"])
    query = query_of(answered["Location"])
    assert "code" in query and query["state"] == params["state"]
    assert AuthorizationCode.objects.get().user == user


def test_consent_answer_without_csrf_token_is_refused(browser, service_client, pkce, user):
    from idp.models import Consent

    browser.handler.enforce_csrf_checks = True
    params = authorize_params(service_client.client.client_id, pkce, redirect_uri="https://service.example.com/callback")
    forged = browser.post(f"{reverse('authorize')}?{urlencode(params)}", {"decision": "allow"})
    assert forged.status_code == 403
    assert not Consent.objects.exists() and not AuthorizationCode.objects.exists()


def test_consent_form_with_its_csrf_token_is_accepted(browser, service_client, pkce, user):
    import re

    browser.handler.enforce_csrf_checks = True
    params = authorize_params(service_client.client.client_id, pkce, redirect_uri="https://service.example.com/callback")
    url = f"{reverse('authorize')}?{urlencode(params)}"
    page = browser.get(url).content.decode()
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert found is not None
    token = found.group(1)
    allowed = browser.post(url, {"decision": "allow", "csrfmiddlewaretoken": token})
    assert "code" in query_of(allowed["Location"])


@pytest.mark.parametrize("name", ["prompt", "max_age", "response_mode", "dpop_jkt", "nonce", "code_challenge"])
def test_repeated_parameter_is_invalid_request(browser, mobile_client, pkce, name):
    """RFC 6749 §3.1: which of two values would count? Neither: refuse."""
    params = authorize_params(mobile_client.client.client_id, pkce)
    value = {"prompt": "login", "max_age": "5", "response_mode": "query", "dpop_jkt": "A" * 43}.get(name, params.get(name))
    query = urlencode([*params.items(), (name, value)]) if name in params else urlencode([*params.items(), (name, value), (name, value)])
    response = browser.get(f"{reverse('authorize')}?{query}")
    assert _error(response) == "invalid_request"
    assert name in query_of(response["Location"])["error_description"]
    assert not AuthorizationCode.objects.exists()


def test_max_age_zero_is_prompt_login(browser, mobile_client, pkce):
    """OIDC Core §3.1.2.1: max_age=0 is equivalent to prompt=login, even for a sign-in this second."""
    response = _get(browser, authorize_params(mobile_client.client.client_id, pkce, max_age="0"))
    assert response["Location"].startswith(reverse("accounts:login")) and "force=1" in response["Location"]
    assert not AuthorizationCode.objects.exists()
    login = browser.post(response["Location"], {"username": "alice", "password": PASSWORD,
                                                "next": query_of(response["Location"])["next"]})
    back = browser.get(login["Location"])
    assert "code" in query_of(back["Location"])  # the fresh sign-in counts; no loop
