"""Authorization endpoint: RFC 6749 §4.1.1-§4.1.2.1, RFC 7636, RFC 8252, RFC 9207, OIDC Core §3.1.2."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from core import jwt_tokens
from core.models import SecurityEvent
from idp.models import Consent
from sessions.models import AuthorizationCode

from .conftest import MOBILE_REDIRECT, authorize_params, exchange, get_code, query_of

pytestmark = pytest.mark.django_db


def _get(browser, params):
    return browser.get(f"{reverse('authorize')}?{urlencode(params)}")


def test_issues_code_with_state_and_iss(browser, mobile_client, pkce, settings):
    params = authorize_params(mobile_client.client.client_id, pkce)
    response = _get(browser, params)
    query = query_of(response["Location"])
    assert response["Location"].startswith(MOBILE_REDIRECT + "?")
    assert query["state"] == params["state"]
    assert query["iss"] == settings.IDP_ISSUER
    stored = AuthorizationCode.objects.get(client=mobile_client.client, nonce=params["nonce"])
    assert stored.code_hash != query["code"].encode() and len(stored.code_hash) == 32
    assert stored.amr == ["pwd"]


def test_unregistered_redirect_uri_shows_error_page_and_never_redirects(browser, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, redirect_uri="https://evil.example/cb")
    response = _get(browser, params)
    assert response.status_code == 400
    assert "Location" not in response
    assert b"not supported by client" in response.content or b"cannot be completed" in response.content
    assert SecurityEvent.objects.filter(event_type="oauth.authorize_error", reason="invalid_request").exists()


def test_unknown_client_shows_error_page(browser, pkce):
    response = _get(browser, authorize_params("nope", pkce))
    assert response.status_code == 400 and "Location" not in response


def test_redirect_uri_prefix_does_not_match(browser, mobile_client, pkce):
    response = _get(browser, authorize_params(mobile_client.client.client_id, pkce, redirect_uri=MOBILE_REDIRECT + "/x"))
    assert response.status_code == 400


def test_loopback_redirect_matches_any_port(browser, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, redirect_uri="http://127.0.0.1:51234/callback")
    response = _get(browser, params)
    assert response.status_code == 302
    assert response["Location"].startswith("http://127.0.0.1:51234/callback?code=")
    other_path = dict(params, redirect_uri="http://127.0.0.1:51234/other")
    assert _get(browser, other_path).status_code == 400


def test_public_client_without_pkce_gets_invalid_request_redirect(browser, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, code_challenge=None, code_challenge_method=None)
    query = query_of(_get(browser, params)["Location"])
    assert query["error"] == "invalid_request" and query["state"] == params["state"] and "iss" in query


def test_plain_pkce_method_refused(browser, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, code_challenge_method="plain")
    assert query_of(_get(browser, params)["Location"])["error"] == "invalid_request"


def test_not_logged_in_redirects_to_login(client, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, login_hint="alice")
    response = _get(client, params)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert "login_hint=alice" in response["Location"]


def test_prompt_none_without_session_is_login_required(client, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, prompt="none")
    query = query_of(_get(client, params)["Location"])
    assert query["error"] == "login_required" and query["state"] == params["state"]


def test_prompt_none_with_session_issues_code(browser, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, prompt="none")
    assert "code" in query_of(_get(browser, params)["Location"])


def test_prompt_none_combined_with_login_is_invalid(browser, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, prompt="none login")
    assert query_of(_get(browser, params)["Location"])["error"] == "invalid_request"


def test_prompt_login_forces_reauthentication_then_succeeds(browser, mobile_client, pkce, user):
    params = authorize_params(mobile_client.client.client_id, pkce, prompt="login")
    first = _get(browser, params)
    assert first["Location"].startswith(reverse("accounts:login")) and "force=1" in first["Location"]
    from .conftest import PASSWORD

    login = browser.post(
        first["Location"], {"username": "alice", "password": PASSWORD, "next": query_of(first["Location"])["next"]}
    )
    assert login.status_code == 302, login.content.decode()[:2000]
    again = browser.get(login["Location"])
    assert again.status_code == 302, (login["Location"], again.content.decode()[:1500])
    assert "code" in query_of(again["Location"])


def test_prompt_login_answered_by_signing_in_as_someone_else_issues_their_code(browser, mobile_client, pkce,
                                                                                 django_user_model):
    """Signing in as another user flushes the session (Django, against fixation); the demand
    outlives it, so the new sign-in answers it instead of sending the browser round again."""
    from .conftest import PASSWORD, exchange

    bob = django_user_model(username="bob", email="bob@example.com")
    bob.set_password(PASSWORD)
    bob.save()
    params = authorize_params(mobile_client.client.client_id, pkce, prompt="login")
    first = _get(browser, params)
    login = browser.post(first["Location"], {"username": "bob", "password": PASSWORD,
                                             "next": query_of(first["Location"])["next"]})
    assert login.status_code == 302, login.content.decode()[:1000]
    again = browser.get(login["Location"])
    code = query_of(again["Location"]).get("code")
    assert code, again["Location"]
    tokens = exchange(browser, code, pkce, mobile_client.client.client_id).json()
    assert jwt_tokens.verify(tokens["access_token"], typ="at+jwt")["sub"] == bob.get_user_id()


def test_prompt_login_is_answered_by_a_sign_in_on_a_server_whose_clock_is_behind(browser, mobile_client, pkce,
                                                                                  time_machine):
    """The demand on one server, the sign-in on another whose clock is 30 s behind: the sign-in
    still answers the demand (was: auth_time < demanded time, the login page again, for ever)."""
    import datetime as dt

    from .conftest import PASSWORD

    now = dt.datetime.now(tz=dt.UTC)
    time_machine.move_to(now)
    params = authorize_params(mobile_client.client.client_id, pkce, prompt="login")
    first = _get(browser, params)
    time_machine.move_to(now - dt.timedelta(seconds=30))  # the login page's server
    login = browser.post(first["Location"], {"username": "alice", "password": PASSWORD,
                                             "next": query_of(first["Location"])["next"]})
    time_machine.move_to(now + dt.timedelta(seconds=1))  # back on the first server
    again = browser.get(login["Location"])
    assert "code" in query_of(again["Location"]), again["Location"]


def test_prompt_login_is_not_answered_by_coming_back_without_signing_in(browser, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, prompt="login")
    first = _get(browser, params)
    again = _get(browser, params)  # the same request again, nobody signed in meanwhile
    assert again["Location"].startswith(reverse("accounts:login")) and "force=1" in again["Location"]
    assert first["Location"] == again["Location"]


def test_prompt_login_is_answered_once_a_reload_from_history_signs_in_again(browser, mobile_client, pkce):
    """A kiosk: the user answered prompt=login and walked away signed in; the same URL from the
    history must not give the next person a code without a sign-in (with a nonce, its replay is
    refused anyway; without one, the demand is what stops it)."""
    from .conftest import PASSWORD

    params = authorize_params(mobile_client.client.client_id, pkce, prompt="login")
    params.pop("nonce")
    first = _get(browser, params)
    login = browser.post(first["Location"], {"username": "alice", "password": PASSWORD,
                                             "next": query_of(first["Location"])["next"]})
    assert "code" in query_of(browser.get(login["Location"])["Location"])
    reload = _get(browser, params)
    assert reload["Location"].startswith(reverse("accounts:login")) and "force=1" in reload["Location"]


def test_prompt_login_with_a_consent_page_between_sign_in_and_code(browser, service_client, pkce):
    """The sign-in answers the demand on the consent page's GET and on its POST (allow) alike."""
    from .conftest import PASSWORD, SERVICE_REDIRECT

    params = authorize_params(service_client.client.client_id, pkce, redirect_uri=SERVICE_REDIRECT, prompt="login")
    first = _get(browser, params)
    login = browser.post(first["Location"], {"username": "alice", "password": PASSWORD,
                                             "next": query_of(first["Location"])["next"]})
    consent = browser.get(login["Location"])
    assert consent.status_code == 200, consent.get("Location")
    allowed = browser.post(login["Location"], {"decision": "allow"})
    assert allowed.status_code == 302 and "code" in query_of(allowed["Location"]), allowed.get("Location")


def test_max_age_answered_by_a_sign_in_long_ago_in_another_tab_signs_in_again(browser, mobile_client, pkce,
                                                                              time_machine):
    """A sign-in after the demand answers it only while it is within max_age (with an allowance
    for another server's clock): hours later it is too old, whatever its id."""
    import datetime as dt

    from .conftest import PASSWORD

    now = dt.datetime.now(tz=dt.UTC)
    time_machine.move_to(now)
    params = authorize_params(mobile_client.client.client_id, pkce, max_age="60")
    time_machine.move_to(now + dt.timedelta(minutes=5))  # the fixture's sign-in is now too old
    first = _get(browser, params)
    assert first["Location"].startswith(reverse("accounts:login"))
    browser.post(first["Location"], {"username": "alice", "password": PASSWORD,
                                     "next": query_of(first["Location"])["next"]})  # "another tab"
    time_machine.move_to(now + dt.timedelta(hours=3))
    assert _get(browser, params)["Location"].startswith(reverse("accounts:login"))


def test_max_age_exceeded_forces_login(browser, mobile_client, pkce, time_machine):
    import datetime as dt

    time_machine.move_to(dt.datetime.now(tz=dt.UTC) + dt.timedelta(seconds=120))
    params = authorize_params(mobile_client.client.client_id, pkce, max_age="60")
    assert _get(browser, params)["Location"].startswith(reverse("accounts:login"))
    assert "code" in query_of(_get(browser, dict(params, max_age="600", nonce="other"))["Location"])


def test_invalid_max_age(browser, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, max_age="-5")
    assert query_of(_get(browser, params)["Location"])["error"] == "invalid_request"


def test_acr_values_mfa_demands_step_up(browser, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, acr_values="urn:vigil:acr:mfa")
    response = _get(browser, params)
    assert response["Location"].startswith(reverse("accounts:login"))
    assert "acr=urn%3Avigil%3Aacr%3Amfa" in response["Location"]


def test_client_requiring_mfa_demands_step_up(browser, mobile_client, pkce):
    mobile_client.client.require_mfa = True
    mobile_client.client.save()
    response = _get(browser, authorize_params(mobile_client.client.client_id, pkce))
    assert "acr=urn%3Avigil%3Aacr%3Amfa" in response["Location"]


def test_prompt_none_with_insufficient_acr_is_login_required(browser, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, acr_values="urn:vigil:acr:mfa", prompt="none")
    assert query_of(_get(browser, params)["Location"])["error"] == "login_required"


def test_resource_not_allowed_is_invalid_target(browser, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, resource="https://other.example.com")
    assert query_of(_get(browser, params)["Location"])["error"] == "invalid_target"


@pytest.mark.parametrize("resource", ["https://[bad]/", "http://[::1", "https://api.example.com:port/"])
def test_a_resource_that_is_not_a_uri_is_invalid_target(browser, mobile_client, pkce, resource):
    """``urlsplit`` raises on these: the answer is still RFC 8707's error at the client, no 500."""
    params = authorize_params(mobile_client.client.client_id, pkce, resource=resource)
    response = _get(browser, params)
    assert response.status_code == 302 and query_of(response["Location"])["error"] == "invalid_target"
    assert not AuthorizationCode.objects.exists()


def test_scope_outside_client_allowance_is_dropped(browser, mobile_client, pkce):
    code, params = get_code(browser, mobile_client.client.client_id, pkce, scope="openid admin:all")
    assert AuthorizationCode.objects.get(nonce=params["nonce"]).scope == "openid"


def test_consent_screen_for_third_party_then_remembered(client, user, service_client, pkce):
    from .conftest import PASSWORD

    client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    params = authorize_params(
        service_client.client.client_id, pkce, redirect_uri="https://service.example.com/callback", scope="openid orders.read"
    )
    url = f"{reverse('authorize')}?{urlencode(params)}"
    page = client.get(url)
    assert page.status_code == 200 and b"Service wants to access your account" in page.content
    allowed = client.post(url, {"decision": "allow"})
    assert "code" in query_of(allowed["Location"])
    assert Consent.objects.get(user=user, client=service_client.client).scopes == ["openid", "orders.read"]
    assert "code" in query_of(client.get(url.replace(params["nonce"], "n2"))["Location"])  # remembered
    forced = client.get(url.replace(params["nonce"], "n3") + "&prompt=consent")
    assert forced.status_code == 200


def test_consent_denied_is_access_denied(client, user, service_client, pkce):
    from .conftest import PASSWORD

    client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    params = authorize_params(service_client.client.client_id, pkce, redirect_uri="https://service.example.com/callback")
    url = f"{reverse('authorize')}?{urlencode(params)}"
    query = query_of(client.post(url, {"decision": "deny"})["Location"])
    assert query["error"] == "access_denied" and query["state"] == params["state"]


def test_prompt_none_without_consent_is_consent_required(client, user, service_client, pkce):
    from .conftest import PASSWORD

    client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    params = authorize_params(
        service_client.client.client_id, pkce, redirect_uri="https://service.example.com/callback", prompt="none"
    )
    query = query_of(client.get(f"{reverse('authorize')}?{urlencode(params)}")["Location"])
    assert query["error"] == "consent_required"


def test_a_nonce_already_exchanged_is_a_replay(browser, mobile_client, pkce):
    client_id = mobile_client.client.client_id
    params = authorize_params(client_id, pkce)
    code = query_of(_get(browser, params)["Location"])["code"]
    assert exchange(browser, code, pkce, client_id).status_code == 200
    codes = AuthorizationCode.objects.count()
    assert query_of(_get(browser, params)["Location"])["error"] == "invalid_request"
    assert AuthorizationCode.objects.count() == codes


def test_a_nonce_of_another_sign_in_is_a_replay(browser, client, mobile_client, pkce, user):
    """Another browser of the same user, signed in on its own, cannot reuse the nonce, even while
    the first code is unexchanged."""
    from django.test import Client as BrowserClient

    from .conftest import PASSWORD

    params = authorize_params(mobile_client.client.client_id, pkce)
    first = query_of(_get(browser, params)["Location"])["code"]
    other = BrowserClient()
    assert other.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD}).status_code == 302
    codes = list(AuthorizationCode.objects.values_list("pk", "expires_at"))
    assert query_of(_get(other, params)["Location"])["error"] == "invalid_request"
    assert list(AuthorizationCode.objects.values_list("pk", "expires_at")) == codes
    assert exchange(browser, first, pkce, mobile_client.client.client_id).status_code == 200


def test_the_same_sign_in_sending_the_request_again_gets_one_live_code(browser, mobile_client, pkce):
    """A response lost after the code was committed (the session's write failing into a 503, a
    dropped connection): the browser's retry of the same request is not a replay. It gets a new
    code and the earlier one, never delivered, stops working, so one code of the nonce lives."""
    client_id = mobile_client.client.client_id
    params = authorize_params(client_id, pkce)
    lost = query_of(_get(browser, params)["Location"])["code"]
    retried = query_of(_get(browser, params)["Location"])
    assert "code" in retried and retried["code"] != lost, retried
    assert exchange(browser, lost, pkce, client_id).json()["error"] == "invalid_grant"
    tokens = exchange(browser, retried["code"], pkce, client_id)
    assert tokens.status_code == 200, tokens.content
    payload = tokens.json()["id_token"].split(".")[1]
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["nonce"] == params["nonce"]


def test_unsupported_response_type(browser, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, response_type="token")
    query = query_of(_get(browser, params)["Location"])
    assert query["error"] == "unsupported_response_type"
