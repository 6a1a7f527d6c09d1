"""The admin's second-factor rule and its development exception (``accounts.admin_site``);
the sign-in itself is tested in idp/tests/test_admin_step_up.py."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.admin_site import single_factor_allowed
from accounts.checks import check_admin_second_factor


@pytest.mark.parametrize("value", ["0", "false", "off", ""])
def test_the_exception_set_off_as_a_string_is_off_everywhere(settings: Any, value: str) -> None:
    """The check and the site read the setting the same way: "0" neither lets staff in with
    a password alone nor stops the server from starting."""
    settings.VIGIL_ADMIN_ALLOW_SINGLE_FACTOR = value
    settings.DEBUG = False
    assert check_admin_second_factor() == []
    settings.DEBUG = True
    assert not single_factor_allowed()


def test_the_exception_set_on_as_a_string_needs_debug(settings: Any) -> None:
    settings.VIGIL_ADMIN_ALLOW_SINGLE_FACTOR = "1"
    settings.DEBUG = False
    assert [problem.id for problem in check_admin_second_factor()] == ["accounts.E005"]
    assert not single_factor_allowed()
    settings.DEBUG = True
    assert check_admin_second_factor() == [] and single_factor_allowed()


@pytest.mark.django_db
def test_the_admins_log_out_is_vigils_sign_out(admin_client: Any, admin_user: Any) -> None:
    """Django's admin "Log out" flushed the session only: no record, the apps born from that
    sign-in left alive. It is Vigil's sign-out now."""
    from django.urls import reverse
    from django.utils import timezone

    from accounts.models import BrowserSession
    from clients.flows.registration import register_client
    from core.models import SecurityEvent
    from sessions.models import DeviceSession, SessionStatus

    sid = BrowserSession.objects.open().get(user=admin_user).sid
    app = register_client(name="App", public=True, redirect_uris=["com.example.app:/cb"]).client
    family = DeviceSession.objects.create(sid="fam-1", user=admin_user, client=app, browser_sid=sid,
                                          auth_time=timezone.now(), amr=["pwd"])
    response = admin_client.post(reverse("admin:logout"))
    assert response.status_code == 200
    assert "_auth_user_id" not in admin_client.session
    assert admin_client.get(reverse("admin:index")).status_code == 302
    family.refresh_from_db()
    assert family.status == SessionStatus.REVOKED and family.status_reason == "logout"
    assert not BrowserSession.objects.open().filter(user=admin_user).exists()
    event = SecurityEvent.objects.get(event_type="logout", user=admin_user)
    assert event.details["revoked"] == 1


@pytest.mark.django_db
def test_the_admins_password_change_is_vigils_page(admin_client: Any, admin_user: Any) -> None:
    """Django's form changed the password without the throttle, the sign-outs or the event."""
    from django.urls import reverse

    for name in ("admin:password_change", "admin:password_change_done"):
        response = admin_client.get(reverse(name))
        assert response.status_code == 302
    assert admin_client.get(reverse("admin:password_change"))["Location"] == reverse("accounts:password_change")
    posted = admin_client.post(reverse("admin:password_change"), {
        "old_password": "password", "new_password1": "a new long passphrase 5", "new_password2": "a new long passphrase 5"})
    assert posted.status_code == 302
    admin_user.refresh_from_db()
    assert admin_user.check_password("password")  # Django's form no longer takes it
