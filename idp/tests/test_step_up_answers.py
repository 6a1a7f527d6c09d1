"""A risk step-up demand is answered by a sign-in made after it, told by the sign-in's id and
never by clocks (docs/risk.md, "How a demand is answered"): the code exchange and the device
grant refuse a family whose sign-in came before the demand even when its ``auth_time`` is
later than the demand's ``created_at`` (another server's clock), and accept one whose sign-in
answered it even when its ``auth_time`` is not later. A refusal records ``risk.step_up_pending``
and changes nothing else; a retry stays refused."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from accounts.testing import sign_in_with_second_factor
from clients.flows.registration import RegisteredClient, register_client
from core import keys
from core.acr import ACR_MFA
from core.events import EventType
from core.models import SecurityEvent
from idp.models import DeviceAuthorization, DeviceAuthorizationStatus
from idp.oauth.grants.device_code import DEVICE_CODE
from risk.errors import STEP_UP_DESCRIPTION
from risk.models import StepUpAnswer, StepUpDemand
from risk.stepup import demand
from sessions.models import AccessToken, AuthorizationCode, DeviceSession, RefreshToken

from .conftest import PASSWORD, authorize_params, exchange, form_post, get_code, make_pkce, query_of

pytestmark = pytest.mark.django_db
ONE_STATEMENT = [pytest.param(True, marks=pytest.mark.postgres, id="one-statement"),
                 pytest.param(False, id="transactional")]
#: What a refusal may record, and nothing else changes.
REFUSAL_EVENTS = {EventType.RISK_STEP_UP_PENDING, EventType.OAUTH_ERROR}  # the error response


def rows() -> dict[str, Any]:
    """Every row a code exchange or a device poll could write, but the security events."""
    return {
        "families": list(DeviceSession.objects.order_by("pk").values_list("sid", "status", "login_id")),
        "refresh": RefreshToken.objects.count(),
        "access": AccessToken.objects.count(),
        "codes": list(AuthorizationCode.objects.order_by("pk").values_list("pk", "used_at", "exchanged_jkt")),
        "demands": list(StepUpDemand.objects.order_by("pk").values_list("pk", "cleared_at", "cleared_by_sid")),
        "answers": list(StepUpAnswer.objects.order_by("pk").values_list("demand_id", "login_id")),
        "devices": list(DeviceAuthorization.objects.order_by("pk").values_list("pk", "status", "login_id")),
    }


def events() -> Counter[str]:
    return Counter(SecurityEvent.objects.values_list("event_type", flat=True))


def login_id(browser: HttpClient) -> str:
    return str(browser.session["vigil_auth"]["login"])


def _assert_refused(response: Any) -> None:
    assert response.status_code == 400, response.content
    assert response.json() == {"error": "invalid_grant", "error_description": STEP_UP_DESCRIPTION}


def _assert_only_the_refusal_recorded(before: Counter[str], after: Counter[str]) -> None:
    added = after - before
    assert added[EventType.RISK_STEP_UP_PENDING] == 1, added
    assert set(added) <= REFUSAL_EVENTS, added


# --- the code exchange ---------------------------------------------------------------------------


@pytest.mark.parametrize("one_statement", ONE_STATEMENT)
def test_a_code_from_a_sign_in_before_the_demand_is_refused_though_its_auth_time_is_later(
        browser: HttpClient, user: Any, mobile_client: RegisteredClient, settings: Any, one_statement: bool) -> None:
    """The MFA sign-in and its code come first; then the risk, on a server whose clock is a
    minute behind the login's, so the demand's ``created_at`` is before the code's
    ``auth_time``. The exchange is refused, and so is every retry of the same code."""
    settings.SESSIONS_ROTATE_IN_ONE_STATEMENT = one_statement
    keys.ensure_keys()
    client_id = mobile_client.client.client_id
    sign_in_with_second_factor(browser, user, PASSWORD)
    pkce = make_pkce()
    code, _ = get_code(browser, client_id, pkce)
    issued = AuthorizationCode.objects.get()
    assert issued.acr == ACR_MFA and issued.login_id == login_id(browser)
    opened = demand(user, mobile_client.client, "impossible_travel", now=issued.auth_time - timedelta(minutes=1))
    assert opened.created_at < issued.auth_time  # by the clocks, the sign-in came after the demand

    for _attempt in range(2):  # the first exchange, then its retry
        before, recorded = rows(), events()
        _assert_refused(exchange(HttpClient(), code, pkce, client_id))
        assert rows() == before
        _assert_only_the_refusal_recorded(recorded, events())
    assert not DeviceSession.objects.exists() and AuthorizationCode.objects.get().used_at is None
    assert StepUpDemand.objects.open().get() == opened and not StepUpAnswer.objects.exists()


@pytest.mark.parametrize("one_statement", ONE_STATEMENT)
@pytest.mark.parametrize("ahead", [0, 60], ids=["same-second", "demand-clock-ahead"])
def test_a_sign_in_after_the_demand_answers_it_though_its_auth_time_is_not_later(
        browser: HttpClient, user: Any, mobile_client: RegisteredClient, settings: Any, one_statement: bool,
        ahead: int) -> None:
    """The demand first, on a server whose clock is ``ahead`` seconds ahead of the login's (or
    in the same second): the MFA sign-in after it answers it, its code is issued without
    another sign-in, and the exchange starts the family and clears the demand."""
    settings.SESSIONS_ROTATE_IN_ONE_STATEMENT = one_statement
    keys.ensure_keys()
    client_id = mobile_client.client.client_id
    now = timezone.now().replace(microsecond=0)
    with time_machine.travel(now, tick=False):
        opened = demand(user, mobile_client.client, "impossible_travel", now=now + timedelta(seconds=ahead))
        sign_in_with_second_factor(browser, user, PASSWORD)
        pkce = make_pkce()
        code, _ = get_code(browser, client_id, pkce)
        response = exchange(HttpClient(), code, pkce, client_id)
    assert response.status_code == 200, response.content
    family = DeviceSession.objects.get()
    assert family.login_id == login_id(browser) and family.auth_time <= opened.created_at
    opened.refresh_from_db()
    assert opened.cleared_at is not None and opened.cleared_by_sid == family.sid
    answered = SecurityEvent.objects.get(event_type=EventType.RISK_STEP_UP_ANSWERED)
    assert answered.user == user and answered.details["demands"] == 1
    assert SecurityEvent.objects.filter(event_type=EventType.RISK_STEP_UP_CLEARED, session_id=family.sid).exists()


def test_authorize_sends_a_sign_in_from_before_the_demand_to_sign_in_again_though_its_auth_time_is_later(
        browser: HttpClient, user: Any, mobile_client: RegisteredClient) -> None:
    """The page asks what the exchange asks: no code for a sign-in that did not answer the
    demand (it would only be refused), a full sign-in (``force=1``) instead, which answers it."""
    client_id = mobile_client.client.client_id
    sign_in_with_second_factor(browser, user, PASSWORD)
    auth_time = datetime.fromtimestamp(browser.session["vigil_auth"]["auth_time"], tz=UTC)
    demand(user, mobile_client.client, "impossible_travel", now=auth_time - timedelta(minutes=1))
    pkce = make_pkce()
    url = f"{reverse('authorize')}?{urlencode(authorize_params(client_id, pkce))}"
    asked = browser.get(url)
    assert asked.status_code == 302 and asked["Location"].startswith(reverse("accounts:login"))
    assert query_of(asked["Location"])["force"] == "1" and query_of(asked["Location"])["acr"] == ACR_MFA
    assert not AuthorizationCode.objects.exists()
    keys.ensure_keys()
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):  # the next TOTP step
        sign_in_with_second_factor(browser, user, PASSWORD)
        code, _ = get_code(browser, client_id, pkce)
        assert exchange(HttpClient(), code, pkce, client_id).status_code == 200
    assert not StepUpDemand.objects.open().exists()


def test_a_further_factor_on_the_same_sign_in_answers_nothing(browser: HttpClient, user: Any,
                                                             mobile_client: RegisteredClient) -> None:
    """Only a new sign-in (a new login id) answers: a step-up keeps the sign-in's id, and that
    sign-in may have issued codes before the risk. The step-up's MFA session is still sent to
    sign in again (``force=1``); the sign-in that follows answers."""
    from accounts.models import SealedTOTPDevice
    from accounts.testing import totp_code

    before = login_id(browser)  # the fixture's password sign-in, before the risk
    demand(user, mobile_client.client, "impossible_travel")
    device = SealedTOTPDevice.create_sealed(user, "phone")
    device.confirmed = True
    device.save()
    stepping = browser.get(f"{reverse('accounts:login')}?{urlencode({'acr': ACR_MFA, 'next': '/accounts/'})}")
    assert stepping.status_code == 302 and stepping["Location"].startswith(reverse("accounts:verify"))
    done = browser.post(reverse("accounts:verify"), {"method": "totp", "code": totp_code(device)})
    assert done.status_code == 302
    assert browser.session["vigil_auth"]["amr"] == ["mfa", "otp", "pwd"] and login_id(browser) == before
    assert not StepUpAnswer.objects.exists()
    asked = browser.get(f"{reverse('authorize')}?{urlencode(authorize_params(mobile_client.client.client_id, make_pkce()))}")
    assert asked["Location"].startswith(reverse("accounts:login")) and query_of(asked["Location"])["force"] == "1"
    assert not AuthorizationCode.objects.exists()
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):  # the next TOTP step
        sign_in_with_second_factor(browser, user, PASSWORD)
    assert StepUpAnswer.objects.get().login_id == login_id(browser) != before


# --- the device grant (RFC 8628) -----------------------------------------------------------------


@pytest.fixture
def tv(db: Any) -> RegisteredClient:
    return register_client(name="Living-room TV", public=True, redirect_uris=[], client_id="tv-app",
                           grant_types=[DEVICE_CODE, "refresh_token"])


@pytest.fixture
def started(tv: RegisteredClient) -> dict[str, Any]:
    response = form_post(HttpClient(), reverse("device-authorization"),
                         {"client_id": "tv-app", "scope": "openid offline_access"})
    assert response.status_code == 200, response.content
    return dict(response.json())


def _approve(browser: HttpClient, user_code: str) -> Any:
    return browser.post(reverse("device"), {"user_code": user_code, "decision": "approve"})


def _poll(device_code: str) -> Any:
    return form_post(HttpClient(), reverse("token"),
                     {"grant_type": DEVICE_CODE, "device_code": device_code, "client_id": "tv-app"})


def test_a_device_approval_from_a_sign_in_before_the_demand_is_refused_though_its_auth_time_is_later(
        client: HttpClient, user: Any, tv: RegisteredClient, started: dict[str, Any]) -> None:
    """Approved by an MFA sign-in, then the risk on a server whose clock is a minute behind: the
    poll is refused (the code is denied, as every policy refusal of a redemption does, and
    nothing else changes), and the next poll stays refused."""
    keys.ensure_keys()
    sign_in_with_second_factor(client, user, PASSWORD)
    assert _approve(client, started["user_code"]).status_code == 200
    approved = DeviceAuthorization.objects.get()
    assert approved.login_id == login_id(client) and approved.acr == ACR_MFA and approved.auth_time is not None
    demand(user, tv.client, "impossible_travel", now=approved.auth_time - timedelta(minutes=1))

    before, recorded = rows(), events()
    _assert_refused(_poll(started["device_code"]))
    after = rows()
    assert after["devices"] == [(approved.pk, DeviceAuthorizationStatus.DENIED, approved.login_id)]
    assert {k: v for k, v in after.items() if k != "devices"} == {k: v for k, v in before.items() if k != "devices"}
    added = events() - recorded
    assert added.pop(EventType.OAUTH_DEVICE_AUTHORIZATION) == 1  # refused_by_policy: the code is denied
    _assert_only_the_refusal_recorded(Counter(), added)

    with time_machine.travel(timezone.now() + timedelta(seconds=6)):
        again = _poll(started["device_code"])
    assert again.json()["error"] == "access_denied"
    assert not DeviceSession.objects.exists() and StepUpDemand.objects.open().count() == 1
    assert not StepUpAnswer.objects.exists()


@pytest.mark.parametrize("ahead", [0, 60], ids=["same-second", "demand-clock-ahead"])
def test_a_device_approval_from_a_sign_in_after_the_demand_gets_tokens_though_its_auth_time_is_not_later(
        client: HttpClient, user: Any, tv: RegisteredClient, started: dict[str, Any], ahead: int) -> None:
    keys.ensure_keys()
    now = timezone.now().replace(microsecond=0)
    with time_machine.travel(now, tick=False):
        opened = demand(user, tv.client, "impossible_travel", now=now + timedelta(seconds=ahead))
        sign_in_with_second_factor(client, user, PASSWORD)
        done = _approve(client, started["user_code"])
    assert done.status_code == 200 and b"Device connected" in done.content  # not sent to sign in again
    with time_machine.travel(now + timedelta(seconds=10), tick=False):
        response = _poll(started["device_code"])
    assert response.status_code == 200, response.content
    family = DeviceSession.objects.get()
    assert family.login_id == login_id(client) and family.auth_time <= opened.created_at
    opened.refresh_from_db()
    assert opened.cleared_at is not None and opened.cleared_by_sid == family.sid
