"""The admin's "Require step-up" means a new sign-in with a second factor at the next authorization
(issue 13), userinfo says why the token is refused (RFC 9470 §3), and staff need a second
factor for the admin themselves."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.test import Client as BrowserClient
from django.urls import reverse
from django.utils import timezone

from accounts.models import SealedTOTPDevice
from accounts.testing import sign_in_with_second_factor, totp_code
from core.acr import ACR_MFA
from core.models import SecurityEvent
from risk.models import StepUpDemand
from sessions.models import DeviceSession, SessionStatus

from .conftest import PASSWORD, authorize_params, exchange, form_post, make_pkce, query_of


def _require_step_up(admin_client: Any, session: DeviceSession) -> None:
    response = admin_client.post(reverse("admin:device_sessions_devicesession_changelist"),
                                 {"action": "require_step_up", "_selected_action": [session.pk]})
    assert response.status_code == 302


def _authorize(browser: BrowserClient, client_id: str) -> Any:
    params = authorize_params(client_id, make_pkce())
    return browser.get(f"{reverse('authorize')}?{urlencode(params)}")


def test_admin_step_up_demands_a_fresh_second_factor_at_the_next_authorization(
    admin_client: Any, tokens: dict[str, Any], browser: BrowserClient, user: Any, mobile_client: Any,
) -> None:
    client_id = mobile_client.client.client_id
    session = DeviceSession.objects.get(user=user)
    _require_step_up(admin_client, session)
    session.refresh_from_db()
    assert session.status == SessionStatus.STEP_UP_REQUIRED and session.status_reason == "step_up_by_admin"
    demand = StepUpDemand.objects.get(user=user, client=mobile_client.client)
    assert demand.acr == ACR_MFA and demand.cleared_at is None
    assert SecurityEvent.objects.filter(event_type="session.step_up_required", session_id=session.sid).count() == 1

    refused = form_post(BrowserClient(), reverse("token"), {
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id})
    assert refused.status_code == 400 and "Step-up" in refused.json()["error_description"]

    # The browser is still signed in with a password: no code, but the login page asking for MFA.
    again = _authorize(browser, client_id)
    assert again.status_code == 302 and again["Location"].startswith(reverse("accounts:login"))
    login_query = query_of(again["Location"])
    assert login_query["acr"] == ACR_MFA
    assert "code" not in query_of(again["Location"])

    # A fresh password + TOTP sign-in (a moment later) meets the demand: the next authorization
    # issues a code, and its exchange clears the demand.
    device = SealedTOTPDevice.create_sealed(user, "app")
    device.confirmed = True
    device.save()
    with time_machine.travel(timezone.now() + timedelta(seconds=2)):
        _sign_in_and_exchange(browser, device, client_id)
    demand.refresh_from_db()
    assert demand.cleared_at is not None


def _sign_in_and_exchange(browser: BrowserClient, device: SealedTOTPDevice, client_id: str) -> None:
    assert browser.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD, "acr": ACR_MFA,
                                                    "force": "1"}).status_code == 302
    assert browser.post(reverse("accounts:verify"), {"method": "totp", "code": totp_code(device)}).status_code == 302
    pkce = make_pkce()
    granted = browser.get(f"{reverse('authorize')}?{urlencode(authorize_params(client_id, pkce))}")
    code = query_of(granted["Location"]).get("code")
    assert code, granted["Location"]
    issued = exchange(BrowserClient(), code, pkce, client_id)
    assert issued.status_code == 200, issued.content


def test_userinfo_says_step_up_rather_than_revoked(admin_client: Any, tokens: dict[str, Any], user: Any) -> None:
    _require_step_up(admin_client, DeviceSession.objects.get(user=user))
    response = BrowserClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert response.status_code == 401
    assert response.json()["error"] == "insufficient_user_authentication"
    assert "revoked" not in response.json()["error_description"]
    assert response["WWW-Authenticate"].startswith('Bearer error="insufficient_user_authentication"')
    assert f'acr_values="{ACR_MFA}"' in response["WWW-Authenticate"]


def test_userinfo_still_says_revoked_for_a_revoked_family(admin_client: Any, tokens: dict[str, Any],
                                                          user: Any) -> None:
    admin_client.post(reverse("admin:device_sessions_devicesession_changelist"),
                      {"action": "revoke", "_selected_action": [DeviceSession.objects.get(user=user).pk]})
    response = BrowserClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token", "error_description": "The access token has been revoked."}


# --- staff need a second factor -------------------------------------------------------------------


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("ops", password=PASSWORD, is_staff=True, is_superuser=True)


def test_staff_with_a_password_alone_are_sent_for_a_second_factor(staff: Any) -> None:
    browser = BrowserClient()
    assert browser.post(reverse("accounts:login"), {"username": "ops", "password": PASSWORD}).status_code == 302
    index = browser.get(reverse("admin:index"))
    assert index.status_code == 302 and index["Location"].startswith(reverse("admin:login"))
    login = browser.get(index["Location"])
    assert login.status_code == 302 and login["Location"].startswith(reverse("accounts:login"))
    assert query_of(login["Location"])["acr"] == ACR_MFA
    assert browser.get(reverse("admin:device_sessions_devicesession_changelist")).status_code == 302


def test_staff_with_a_second_factor_reach_the_admin(staff: Any) -> None:
    browser = sign_in_with_second_factor(BrowserClient(), staff, PASSWORD)
    assert browser.get(reverse("admin:index")).status_code == 200


def test_single_factor_exception_is_for_development_only(staff: Any, settings: Any) -> None:
    from accounts.checks import check_admin_second_factor

    browser = BrowserClient()
    browser.post(reverse("accounts:login"), {"username": "ops", "password": PASSWORD})
    settings.VIGIL_ADMIN_ALLOW_SINGLE_FACTOR = True
    settings.DEBUG = False
    assert [e.id for e in check_admin_second_factor()] == ["accounts.E005"]
    assert browser.get(reverse("admin:index")).status_code == 302  # not honoured without DEBUG
    settings.DEBUG = True
    assert check_admin_second_factor() == []
    assert browser.get(reverse("admin:index")).status_code == 200
    settings.VIGIL_ADMIN_ALLOW_SINGLE_FACTOR = False
    assert check_admin_second_factor() == []
    assert browser.get(reverse("admin:index")).status_code == 302


def test_an_mfa_sign_in_from_before_the_demand_does_not_meet_it(
    admin_client: Any, client: BrowserClient, user: Any, mobile_client: Any,
) -> None:
    """The demand wants a second factor verified *after* it: an earlier MFA session is sent
    back through a full sign-in (``force``), not handed a code."""
    client_id = mobile_client.client.client_id
    start = timezone.now()
    with time_machine.travel(start, tick=True):
        sign_in_with_second_factor(client, user, PASSWORD)
        pkce = make_pkce()
        first = client.get(f"{reverse('authorize')}?{urlencode(authorize_params(client_id, pkce))}")
        assert exchange(BrowserClient(), query_of(first["Location"])["code"], pkce, client_id).status_code == 200
    with time_machine.travel(start + timedelta(seconds=5), tick=True):
        _require_step_up(admin_client, DeviceSession.objects.get(user=user))
    with time_machine.travel(start + timedelta(seconds=10), tick=True):
        again = _authorize(client, client_id)
    assert again["Location"].startswith(reverse("accounts:login"))
    assert query_of(again["Location"])["force"] == "1" and query_of(again["Location"])["acr"] == ACR_MFA


def test_staff_without_any_factor_enroll_one_on_the_way_in(staff: Any) -> None:
    browser = BrowserClient()
    login = browser.get(browser.get(reverse("admin:index"))["Location"])["Location"]
    form = query_of(login)  # the login page carries next and acr as hidden fields
    signed_in = browser.post(reverse("accounts:login"), {"username": "ops", "password": PASSWORD, **form})
    assert signed_in.status_code == 302 and signed_in["Location"].startswith(reverse("accounts:mfa_setup"))
    assert browser.get(reverse("admin:index")).status_code == 302  # a password alone is not enough
    assert browser.get(reverse("accounts:totp_enroll")).status_code == 200
    device = SealedTOTPDevice.objects.get(user=staff, confirmed=False)
    enrolled = browser.post(reverse("accounts:totp_enroll"), {"code": totp_code(device)})
    assert enrolled.status_code == 303  # first factor: its codes, shown by the page it redirects to
    assert b"recovery" in browser.get(enrolled["Location"]).content.lower()
    assert browser.get(reverse("admin:index")).status_code == 200


def test_the_demand_page_lists_the_sign_ins_that_answered_it_read_only(
    admin_client: Any, tokens: dict[str, Any], user: Any, mobile_client: Any,
) -> None:
    """The answers (risk.stepup.answer_open_demands) are shown on the demand, never editable."""
    from risk.models import StepUpAnswer
    from risk.stepup import answer_open_demands

    _require_step_up(admin_client, DeviceSession.objects.get(user=user))
    demand = StepUpDemand.objects.get(user=user, client=mobile_client.client)
    assert answer_open_demands(user, "login-after-risk") == 1
    url = reverse("admin:risk_stepupdemand_change", args=[demand.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and b"login-after-risk" in page.content
    form = {"answers-TOTAL_FORMS": "1", "answers-INITIAL_FORMS": "1", "answers-0-id": "x",
            "answers-0-login_id": "forged", "answers-0-DELETE": "on"}
    admin_client.post(url, form)
    assert list(StepUpAnswer.objects.filter(demand=demand).values_list("login_id", flat=True)) == ["login-after-risk"]
