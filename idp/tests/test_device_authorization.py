"""Device authorization grant (RFC 8628): the device authorization endpoint (§3.1-3.2), the
user's page (§3.3, throttled, signed in with the client's acr), polling (§3.4-3.5:
``authorization_pending``, ``slow_down``, ``expired_token``, ``access_denied``), single
redemption (its retry and reuse: test_device_code_retry.py), wrong clients, codes stored hashed; and Authlib's client against the live server."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from clients.flows.registration import RegisteredClient, register_client
from core import jwt_tokens
from core.events import EventType
from core.models import SecurityEvent
from idp.flows.device_authorization import USER_CODE_ALPHABET
from idp.models import DeviceAuthorization, DeviceAuthorizationStatus
from idp.oauth.grants.device_code import DEVICE_CODE
from sessions.models import DeviceSession

from .conftest import PASSWORD, form_post

pytestmark = pytest.mark.django_db
SCOPE = "openid profile offline_access"


@pytest.fixture
def tv(db: Any) -> RegisteredClient:
    return register_client(name="Living-room TV", public=True, redirect_uris=[], client_id="tv-app",
                           grant_types=[DEVICE_CODE, "refresh_token"])


def _start(client_id: str = "tv-app", **extra: Any) -> Any:
    return form_post(HttpClient(), reverse("device-authorization"), {"client_id": client_id, "scope": SCOPE, **extra})


def _poll(device_code: str, client_id: str = "tv-app") -> Any:
    return form_post(HttpClient(), reverse("token"),
                     {"grant_type": DEVICE_CODE, "device_code": device_code, "client_id": client_id})


@pytest.fixture
def started(tv: RegisteredClient) -> dict[str, Any]:
    response = _start()
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    return response.json()


def _approve(browser: HttpClient, user_code: str, decision: str = "approve") -> Any:
    return browser.post(reverse("device"), {"user_code": user_code, "decision": decision})


# --- §3.1-3.2 the device authorization response --------------------------------------------


def test_the_response_and_codes_stored_only_as_hashes(started: dict[str, Any]) -> None:
    assert re.fullmatch(f"[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}", started["user_code"])
    assert not set("AEIOU0123456789") & set(started["user_code"])
    assert started["verification_uri"] == f"{settings.IDP_ISSUER}/device"
    assert started["verification_uri_complete"] == f"{settings.IDP_ISSUER}/device?user_code={started['user_code']}"
    assert (started["expires_in"], started["interval"]) == (600, 5)
    row = DeviceAuthorization.objects.get()
    stored = {row.device_code_hash, row.user_code_hash}
    assert started["device_code"] not in stored and started["user_code"].replace("-", "") not in stored
    assert row.scope == SCOPE and row.status == DeviceAuthorizationStatus.PENDING


def test_a_client_without_the_grant_and_an_unknown_client_are_refused(mobile_client: Any) -> None:
    response = _start(mobile_client.client.client_id)
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    assert _start("nobody").json()["error"] == "invalid_client"
    assert not DeviceAuthorization.objects.exists()


def test_a_resource_outside_the_clients_audiences_is_refused(tv: RegisteredClient) -> None:
    response = _start(resource="https://evil.example.com")
    assert response.status_code == 400 and response.json()["error"] == "invalid_target"
    assert not DeviceAuthorization.objects.exists()


def test_unknown_scopes_are_dropped(tv: RegisteredClient) -> None:
    assert _start(scope="openid admin").status_code == 200
    assert DeviceAuthorization.objects.get().scope == "openid"


# --- §3.3 the user's page ----------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in_and_back(client: HttpClient, started: dict[str, Any]) -> None:
    response = client.get(started["verification_uri_complete"].removeprefix(settings.IDP_ISSUER))
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == reverse("accounts:login")
    assert parse_qs(location.query)["next"] == [f"/device?user_code={started['user_code']}"]


def test_the_page_asks_for_confirmation_even_with_a_prefilled_code(browser: HttpClient,
                                                                   started: dict[str, Any]) -> None:
    """RFC 8628 §5.4: the complete URI only fills the code in; the user confirms the client."""
    page = browser.get(reverse("device"), {"user_code": started["user_code"]})
    assert page.status_code == 200 and b"Living-room TV" in page.content and b'value="approve"' in page.content
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.PENDING


def test_codes_are_typed_loosely(browser: HttpClient, started: dict[str, Any]) -> None:
    typed = started["user_code"].replace("-", " ").lower()
    assert b'value="approve"' in browser.post(reverse("device"), {"user_code": typed}).content


def test_an_unknown_code_is_a_recorded_failure(browser: HttpClient, started: dict[str, Any]) -> None:
    response = browser.post(reverse("device"), {"user_code": "BCDF-GHJK", "decision": "approve"})
    assert response.status_code == 400 and b"not valid" in response.content
    assert SecurityEvent.objects.filter(event_type=EventType.OAUTH_DEVICE_USER_CODE, reason="bad_code").exists()
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.PENDING


def test_guessing_codes_is_throttled(browser: HttpClient, started: dict[str, Any]) -> None:
    statuses = [browser.post(reverse("device"), {"user_code": f"BCDF-GHJ{c}"}).status_code for c in "BCDFGHJK"]
    assert 429 in statuses
    throttled = browser.post(reverse("device"), {"user_code": started["user_code"], "decision": "approve"})
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) >= 1
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.PENDING


def test_typing_a_code_of_ones_own_between_guesses_keeps_the_guesses_counted(
        browser: HttpClient, started: dict[str, Any]) -> None:
    """RFC 8628 §5.1: the guesser starts a device authorization of their own and types its
    valid code after every few wrong ones; the wrong ones still add up to a wait."""
    own = _start().json()["user_code"]
    guesses = iter(f"BCDF-{a}{b}{c}{d}" for a in "GH" for b in "JK" for c in "LM" for d in "NP")
    statuses: list[int] = []
    for _ in range(4):
        statuses += [browser.post(reverse("device"), {"user_code": next(guesses)}).status_code for _ in range(3)]
        page = browser.post(reverse("device"), {"user_code": own})
        statuses.append(page.status_code)
        if page.status_code == 429:
            break
    assert 429 in statuses
    assert DeviceAuthorization.objects.filter(status=DeviceAuthorizationStatus.PENDING).count() == 2


def test_approval_needs_the_clients_acr(browser: HttpClient, tv: RegisteredClient, started: dict[str, Any]) -> None:
    tv.client.require_mfa = True
    tv.client.save()
    response = _approve(browser, started["user_code"])
    assert response.status_code == 302
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["acr"] == ["urn:vigil:acr:mfa"] and "user_code" in query["next"][0]
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.PENDING


def test_a_second_factor_older_than_a_risk_step_up_cannot_approve(client: HttpClient, user: Any, tv: RegisteredClient,
                                                                   started: dict[str, Any]) -> None:
    """A risk step-up demand for the user at this client needs a sign-in newer than the risk,
    as ``/authorize`` does: a second factor passed before it would approve a new family past it
    (the TV would get fresh tokens the authorization-code path refuses). The page sends the user
    to sign in again; the code stays pending meanwhile."""
    from accounts.testing import sign_in_with_second_factor
    from core.acr import ACR_MFA
    from risk.stepup import demand

    with time_machine.travel(timezone.now() - timedelta(minutes=1)):
        sign_in_with_second_factor(client, user, PASSWORD)
    demand(user, tv.client, "impossible_travel")
    refused = _approve(client, started["user_code"])
    assert refused.status_code == 302 and refused["Location"].startswith(reverse("accounts:login"))
    query = parse_qs(urlsplit(refused["Location"]).query)
    assert query["force"] == ["1"] and query["acr"] == [ACR_MFA] and "user_code" in query["next"][0]
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.PENDING
    assert _poll(started["device_code"]).json()["error"] == "authorization_pending"
    assert not DeviceSession.objects.filter(client__client_id="tv-app").exists()

    with time_machine.travel(timezone.now() + timedelta(seconds=2)):  # signed in again, after the risk
        sign_in_with_second_factor(client, user, PASSWORD)
        done = _approve(client, started["user_code"])
    assert done.status_code == 200 and b"Device connected" in done.content
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.APPROVED


def test_a_sign_in_on_a_server_whose_clock_is_behind_the_risk_still_answers_it(
        client: HttpClient, user: Any, tv: RegisteredClient, started: dict[str, Any]) -> None:
    """The page sent the user to sign in again for a risk step-up; the login server's clock is
    30 s behind the one that opened the demand. That sign-in answers the demand (it happened
    after the page asked), instead of sending the user round the login page for ever."""
    from accounts.testing import sign_in_with_second_factor
    from risk.stepup import demand

    with time_machine.travel(timezone.now() - timedelta(minutes=1)):
        sign_in_with_second_factor(client, user, PASSWORD)
    demand(user, tv.client, "impossible_travel")
    assert _approve(client, started["user_code"])["Location"].startswith(reverse("accounts:login"))
    with time_machine.travel(timezone.now() - timedelta(seconds=30)):  # the login server's clock
        sign_in_with_second_factor(client, user, PASSWORD)
    done = _approve(client, started["user_code"])
    assert done.status_code == 200 and b"Device connected" in done.content
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.APPROVED


def test_a_sign_in_that_answered_an_earlier_demand_does_not_answer_a_newer_one(
        client: HttpClient, user: Any, tv: RegisteredClient, started: dict[str, Any]) -> None:
    from accounts.testing import sign_in_with_second_factor
    from risk.stepup import demand

    with time_machine.travel(timezone.now() - timedelta(minutes=3)):
        sign_in_with_second_factor(client, user, PASSWORD)
    with time_machine.travel(timezone.now() - timedelta(minutes=2)):
        first = demand(user, tv.client, "impossible_travel")
    assert _approve(client, started["user_code"])["Location"].startswith(reverse("accounts:login"))
    with time_machine.travel(timezone.now() - timedelta(minutes=1)):
        sign_in_with_second_factor(client, user, PASSWORD)  # answers the first demand
    first.clear("elsewhere")
    demand(user, tv.client, "impossible_travel")  # a new risk, after that sign-in
    again = _approve(client, started["user_code"])
    assert again.status_code == 302 and again["Location"].startswith(reverse("accounts:login"))
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.PENDING


def test_without_signing_in_again_the_page_keeps_asking(client: HttpClient, user: Any, tv: RegisteredClient,
                                                        started: dict[str, Any]) -> None:
    from accounts.testing import sign_in_with_second_factor
    from risk.stepup import demand

    with time_machine.travel(timezone.now() - timedelta(minutes=1)):
        sign_in_with_second_factor(client, user, PASSWORD)
    demand(user, tv.client, "impossible_travel")
    for _ in range(2):
        assert _approve(client, started["user_code"])["Location"].startswith(reverse("accounts:login"))
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.PENDING


def test_a_code_shown_before_the_encryption_secret_rotated_can_still_be_typed(
        browser: HttpClient, started: dict[str, Any], settings: Any) -> None:
    """User codes are stored as keyed hashes: the look-up also tries the fallback secrets."""
    settings.IDP_KEY_ENCRYPTION_SECRET_FALLBACKS = [settings.IDP_KEY_ENCRYPTION_SECRET]
    settings.IDP_KEY_ENCRYPTION_SECRET = "a-new-key-encryption-secret"
    response = _approve(browser, started["user_code"])
    assert response.status_code == 200 and b"Device connected" in response.content
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.APPROVED


def test_a_code_equal_to_one_pending_under_the_old_secret_is_never_guessed_at(
        tv: RegisteredClient, settings: Any, monkeypatch: Any) -> None:
    """Across a rotation of the encryption secret the unique index cannot see that a new code
    equals one pending under the old secret: a new code that does is drawn again, and a typed
    code matching two pending rows approves neither (it never guesses which client asked)."""
    from idp.flows import device_authorization as flow

    old = settings.IDP_KEY_ENCRYPTION_SECRET
    draws = iter(["BCDFGHJK", "BCDFGHJK", "LMNPQRST"])
    monkeypatch.setattr(flow, "generate_user_code", lambda: next(draws))
    first = flow.start(tv.client, scope="openid", resource=[], now=timezone.now())
    settings.IDP_KEY_ENCRYPTION_SECRET_FALLBACKS = [old]
    settings.IDP_KEY_ENCRYPTION_SECRET = "a-new-key-encryption-secret"
    second = flow.start(tv.client, scope="openid", resource=[], now=timezone.now())
    assert second.user_code != first.user_code  # the equal draw was skipped
    found = flow.find_pending(first.user_code, now=timezone.now())
    assert found is not None and found.pk == first.authorization.pk
    twin = DeviceAuthorization.objects.get(pk=second.authorization.pk)
    twin.user_code_hash = flow.keyed_hash("BCDFGHJK")  # as an unlucky draw without the check would be
    twin.save(update_fields=["user_code_hash"])
    assert flow.find_pending("BCDF-GHJK", now=timezone.now()) is None


# --- §3.4-3.5 polling ----------------------------------------------------------------------------


def test_pending_then_slow_down_when_polled_too_fast(started: dict[str, Any]) -> None:
    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert _poll(started["device_code"]).json()["error"] == "authorization_pending"
        too_fast = _poll(started["device_code"])
        assert too_fast.status_code == 400 and too_fast.json()["error"] == "slow_down"
        assert DeviceAuthorization.objects.get().interval == 10
        clock.shift(timedelta(seconds=6))  # the old interval is no longer enough
        assert _poll(started["device_code"]).json()["error"] == "slow_down"
        clock.shift(timedelta(seconds=16))
        assert _poll(started["device_code"]).json()["error"] == "authorization_pending"
    assert DeviceAuthorization.objects.get().interval == 15


def test_approved_then_tokens_once(browser: HttpClient, user: Any, started: dict[str, Any]) -> None:
    """One family; polled again at once (a lost answer's retry) the same refresh token again
    (idp/tests/test_device_code_retry.py has the retry and its reuse)."""
    done = _approve(browser, started["user_code"])
    assert done.status_code == 200 and b"Device connected" in done.content
    response = _poll(started["device_code"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert {"access_token", "refresh_token", "id_token"} <= set(body) and body["scope"] == SCOPE
    claims = jwt_tokens.verify(body["access_token"], typ="at+jwt")
    session = DeviceSession.objects.get(user=user, client__client_id="tv-app")
    assert claims["sub"] == user.get_user_id() and claims["sid"] == session.sid and claims["acr"] == session.acr
    again = _poll(started["device_code"])
    assert again.status_code == 200 and again.json()["refresh_token"] == body["refresh_token"]
    assert DeviceSession.objects.filter(client__client_id="tv-app").count() == 1
    refreshed = form_post(HttpClient(), reverse("token"), {"grant_type": "refresh_token", "client_id": "tv-app",
                                                           "refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.content


def test_a_step_up_demand_opened_after_the_approval_refuses_the_tokens_and_ends_the_code(
        browser: HttpClient, user: Any, tv: RegisteredClient, started: dict[str, Any]) -> None:
    """Redemption starts a family, so the risk policy judges it like a code exchange: a demand
    opened after the user approved (a password sign-in, or one older than the risk) is not met,
    and the TV gets the step-up ``invalid_grant`` and no tokens. The code is then denied: the
    device's next polls are ``access_denied``, not the same refusal recorded every few seconds
    until the code expires."""
    from risk.errors import STEP_UP_DESCRIPTION
    from risk.stepup import demand

    assert _approve(browser, started["user_code"]).status_code == 200
    demand(user, tv.client, "impossible_travel")
    refused = _poll(started["device_code"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert refused.json()["error_description"] == STEP_UP_DESCRIPTION
    assert not DeviceSession.objects.filter(client__client_id="tv-app").exists()
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.DENIED
    pending = SecurityEvent.objects.filter(event_type=EventType.RISK_STEP_UP_PENDING, user=user)
    assert pending.count() == 1
    denied = SecurityEvent.objects.get(event_type=EventType.OAUTH_DEVICE_AUTHORIZATION, reason="refused_by_policy")
    assert denied.outcome == "denied" and denied.user == user and denied.client_id == "tv-app"
    with time_machine.travel(timezone.now() + timedelta(seconds=6)):
        again = _poll(started["device_code"])
    assert again.status_code in (400, 403) and again.json()["error"] == "access_denied"
    assert pending.count() == 1 and not DeviceSession.objects.filter(client__client_id="tv-app").exists()


def test_denied(browser: HttpClient, started: dict[str, Any]) -> None:
    assert b"not connected" in _approve(browser, started["user_code"], "deny").content
    response = _poll(started["device_code"])
    assert response.status_code in (400, 403) and response.json()["error"] == "access_denied"
    assert not DeviceSession.objects.filter(client__client_id="tv-app").exists()


def test_a_decided_code_cannot_be_decided_again(browser: HttpClient, started: dict[str, Any]) -> None:
    _approve(browser, started["user_code"], "deny")
    again = _approve(browser, started["user_code"])
    assert again.status_code == 400
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.DENIED


def test_expired(browser: HttpClient, started: dict[str, Any]) -> None:
    with time_machine.travel(timezone.now() + timedelta(seconds=601)):
        assert _poll(started["device_code"]).json()["error"] == "expired_token"
        assert _approve(browser, started["user_code"]).status_code == 400
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.PENDING


def test_wrong_client_and_unknown_codes(browser: HttpClient, started: dict[str, Any]) -> None:
    register_client(name="Other TV", public=True, redirect_uris=[], client_id="other-tv",
                    grant_types=[DEVICE_CODE])
    _approve(browser, started["user_code"])
    stolen = _poll(started["device_code"], client_id="other-tv")
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert _poll("nonsense").json()["error"] == "invalid_grant"
    missing = form_post(HttpClient(), reverse("token"), {"grant_type": DEVICE_CODE, "client_id": "tv-app"})
    assert missing.json()["error"] == "invalid_request"
    assert not DeviceSession.objects.filter(client__client_id__in=["tv-app", "other-tv"]).exists()
    assert _poll(started["device_code"]).status_code == 200  # the rightful client still can


# --- a third-party client against the live server ---------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_authlib_device_flow_against_the_live_server(live_server: Any, tv: RegisteredClient, user: Any) -> None:
    session = OAuth2Session("tv-app", token_endpoint_auth_method="none", scope=SCOPE)
    started = session.post(f"{live_server.url}/device_authorization",
                           data={"client_id": "tv-app", "scope": SCOPE}, withhold_token=True).json()
    token_url = f"{live_server.url}/token"
    with pytest.raises(OAuthError) as pending:
        session.fetch_token(token_url, grant_type=DEVICE_CODE, device_code=started["device_code"])
    assert pending.value.error == "authorization_pending"
    with pytest.raises(OAuthError) as too_fast:
        session.fetch_token(token_url, grant_type=DEVICE_CODE, device_code=started["device_code"])
    assert too_fast.value.error == "slow_down"
    browser = HttpClient()
    assert browser.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD}).status_code == 302
    assert _approve(browser, started["user_code"]).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(seconds=16)):
        token = session.fetch_token(token_url, grant_type=DEVICE_CODE, device_code=started["device_code"])
    session.close()
    assert token["token_type"] == "Bearer" and token["refresh_token"]
    with OAuth2Session("tv-app", token=token) as reader:
        userinfo = reader.get(f"{live_server.url}/userinfo")
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == user.get_user_id()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_polls_of_an_approved_code_issue_tokens_once(browser: HttpClient, started: dict[str, Any]) -> None:
    """Polls take the row's lock: of twelve polls at once of one client (no DPoP: the same
    instance, as far as the server can tell) exactly one redeems the code, and the others,
    retries inside the window, are given its answer again: one family, one refresh token."""
    from django.db import connection

    from sessions.models import RefreshToken
    from tests.concurrency import run_concurrently

    assert connection.vendor == "postgresql"
    _approve(browser, started["user_code"])
    responses = run_concurrently(12, lambda _: _poll(started["device_code"]))
    assert [r.status_code for r in responses] == [200] * 12, [r.content for r in responses]
    assert len({r.json()["refresh_token"] for r in responses}) == 1
    assert DeviceSession.objects.filter(client__client_id="tv-app").count() == 1
    assert RefreshToken.objects.count() == 1
    assert SecurityEvent.objects.filter(event_type=EventType.OAUTH_TOKEN_ISSUED).count() == 1
    assert SecurityEvent.objects.filter(event_type=EventType.OAUTH_CODE_RETRIED).count() == 11


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_polls_after_a_risk_refusal_find_the_code_denied(browser: HttpClient, user: Any,
                                                                   tv: RegisteredClient, started: dict[str, Any]) -> None:
    """The refusal denies the code under the row's lock: of eight polls at once from an
    impossible place, the first is refused and every other finds the code denied. Denied after
    the rollback instead, a poll waiting on the lock found it still approved, and once the first
    refusal had stored the new place as the user's last one, nothing stopped it (revoke leaves
    no session behind at a redemption)."""
    from django.db import connection, transaction

    from risk import geo, travel
    from risk import testing as net
    from risk.errors import REVOKED_DESCRIPTION
    from risk.models import RiskAction, RiskPolicy
    from tests.concurrency import run_concurrently

    assert connection.vendor == "postgresql"
    RiskPolicy.objects.create(client=tv.client, impossible_travel=RiskAction.REVOKE)
    paris = geo.locate(net.PARIS)
    assert paris is not None
    with transaction.atomic():
        travel.remember(travel.locked_profile(user), paris, timezone.now())
    _approve(browser, started["user_code"])
    form = {"grant_type": DEVICE_CODE, "device_code": started["device_code"], "client_id": "tv-app"}
    responses = run_concurrently(8, lambda _: net.form_post(reverse("token"), form, net.SYDNEY))
    errors = sorted(r.json()["error"] for r in responses)
    assert errors == ["access_denied"] * 7 + ["invalid_grant"], errors
    refused = next(r for r in responses if r.json()["error"] == "invalid_grant")
    assert refused.json()["error_description"] == REVOKED_DESCRIPTION
    assert not DeviceSession.objects.filter(client__client_id="tv-app").exists()
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.DENIED
    assert SecurityEvent.objects.filter(event_type=EventType.OAUTH_DEVICE_AUTHORIZATION,
                                        reason="refused_by_policy").count() == 1


def test_a_repeated_parameter_at_the_start_is_invalid_request(tv: RegisteredClient) -> None:
    """RFC 8628 §3.1 requests follow RFC 6749 §3.2: ``scope`` twice is refused (the last one
    was used), and nothing is started; ``resource`` may repeat (RFC 8707 §2)."""
    body = b"client_id=tv-app&scope=openid&scope=openid+profile+offline_access"
    response = HttpClient().generic("POST", reverse("device-authorization"), body, "application/x-www-form-urlencoded")
    assert response.status_code == 400 and response.json() == {
        "error": "invalid_request", "error_description": "The scope parameter is repeated (RFC 6749 section 3.2)."}
    assert not DeviceAuthorization.objects.exists()
    ignored = b"client_id=tv-app&scope=openid&x-vendor=1&x-vendor=2"  # an unrecognised one is ignored (§3.1)
    assert HttpClient().generic("POST", reverse("device-authorization"), ignored,
                                "application/x-www-form-urlencoded").status_code == 200
