"""The user admin's edits are security decisions: each one is recorded (``user.changed``)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from core.models import SecurityEvent

pytestmark = pytest.mark.django_db


def _form(user: User, **changes: Any) -> dict[str, Any]:
    """The change form as the admin page sends it for ``user`` (no factors), with ``changes``."""
    User.objects.filter(pk=user.pk).update(date_joined=user.date_joined.replace(microsecond=0))  # as the form shows it
    joined = timezone.localtime(user.date_joined)
    data: dict[str, Any] = {
        "username": user.username, "first_name": user.first_name, "last_name": user.last_name,
        "email": user.email, "date_joined_0": joined.strftime("%Y-%m-%d"),
        "date_joined_1": joined.strftime("%H:%M:%S"), "initial-date_joined_0": joined.strftime("%Y-%m-%d"),
        "initial-date_joined_1": joined.strftime("%H:%M:%S"), "last_login_0": "", "last_login_1": "",
        "groups": [], "user_permissions": [],
        "totpdevice_set-TOTAL_FORMS": "0", "totpdevice_set-INITIAL_FORMS": "0",
        "passkeys-TOTAL_FORMS": "0", "passkeys-INITIAL_FORMS": "0",
    }
    flags = {"is_active": user.is_active, "is_staff": user.is_staff, "is_superuser": user.is_superuser,
             "require_mfa": user.require_mfa, "email_verified": user.email_verified}
    flags.update({k: v for k, v in changes.items() if k in flags})
    data.update({k: v for k, v in changes.items() if k not in flags})
    data.update({k: "on" for k, v in flags.items() if v})
    return data


def _save(admin_client: Any, user: User, **changes: Any) -> Any:
    response = admin_client.post(reverse("admin:accounts_user_change", args=[user.pk]), _form(user, **changes))
    assert response.status_code == 302, response.content
    return response


def test_granting_superuser_and_lifting_mfa_are_recorded(admin_client: Any, admin_user: User) -> None:
    target = User.objects.create_user("bob", password="a long enough passphrase", require_mfa=True)
    _save(admin_client, target, is_staff=True, is_superuser=True, require_mfa=False)
    target.refresh_from_db()
    assert target.is_superuser and not target.require_mfa
    event = SecurityEvent.objects.get(event_type="user.changed", user=target)
    assert event.details["changed"] == ["is_staff", "is_superuser", "require_mfa"]
    assert event.details["admin"] == admin_user.get_username()
    assert event.details["is_superuser"] is True and event.details["require_mfa"] is False


def test_saving_without_a_change_records_nothing(admin_client: Any) -> None:
    target = User.objects.create_user("carol", password="a long enough passphrase")
    _save(admin_client, target)
    assert not SecurityEvent.objects.filter(event_type="user.changed").exists()


def test_an_admin_adding_a_user_is_recorded(admin_client: Any, admin_user: User) -> None:
    response = admin_client.post(reverse("admin:accounts_user_add"), {
        "username": "dave", "usable_password": "true",
        "password1": "a long enough passphrase 3", "password2": "a long enough passphrase 3",
        "totpdevice_set-TOTAL_FORMS": "0", "totpdevice_set-INITIAL_FORMS": "0",
        "passkeys-TOTAL_FORMS": "0", "passkeys-INITIAL_FORMS": "0"})
    assert response.status_code == 302, response.content
    event = SecurityEvent.objects.get(event_type="user.created")
    assert event.user == User.objects.get(username="dave") and event.details["admin"] == admin_user.get_username()


def test_a_new_email_is_not_verified_by_the_old_tick(admin_client: Any) -> None:
    """``email_verified`` vouches for one address (ID token, userinfo, shared-signals subjects):
    an admin typing a new one has not verified it, unless they tick it in that same edit."""
    target = User.objects.create_user("erin", email="erin@example.com", email_verified=True,
                                      password="a long enough passphrase")
    _save(admin_client, target, email="someone@attacker.example")
    target.refresh_from_db()
    assert target.email == "someone@attacker.example" and not target.email_verified
    event = SecurityEvent.objects.get(event_type="user.changed", user=target)
    assert event.details["changed"] == ["email"] and event.details["email_verified"] is False

    _save(admin_client, target, email="erin@example.org", email_verified=True)  # vouched for in the same edit
    target.refresh_from_db()
    assert target.email == "erin@example.org" and target.email_verified


def test_deleting_users_is_recorded(admin_client: Any, admin_user: User) -> None:
    """From the delete page and from the changelist's action: one ``user.deleted`` each, naming
    the account gone and the admin; an account kept is not named."""
    dave = User.objects.create_user("dave", password="a long enough passphrase")
    erin = User.objects.create_user("erin", password="a long enough passphrase")
    kept = User.objects.create_user("frank", password="a long enough passphrase")
    gone = {user.username: (user.pk, str(user.subject)) for user in (dave, erin)}

    page = admin_client.post(reverse("admin:accounts_user_delete", args=[dave.pk]), {"post": "yes"})
    assert page.status_code == 302
    action = admin_client.post(reverse("admin:accounts_user_changelist"),
                               {"action": "delete_selected", "_selected_action": [erin.pk], "post": "yes"})
    assert action.status_code == 302
    assert set(User.objects.values_list("username", flat=True)) == {admin_user.username, kept.username}
    events = SecurityEvent.objects.filter(event_type="user.deleted").order_by("pk")
    assert [(e.details["username"], (e.details["user_id"], e.details["sub"])) for e in events] == [
        ("dave", gone["dave"]), ("erin", gone["erin"])]
    assert {e.details["admin"] for e in events} == {admin_user.get_username()}


def test_a_database_failure_midway_through_an_admins_password_set_changes_nothing(admin_client: Any) -> None:
    """Django's form saves the new password, then the database fails while the user's app
    sessions are revoked: a readable 503 that changed nothing (the old password still signs in,
    the app still signed in, nothing on record), and the same form sent again sets it all."""
    from accounts.tests.test_account import device_session
    from core.outage_testing import database_down
    from idp.tests.test_outage import assert_page_503
    from sessions.models import SessionStatus

    target = User.objects.create_user("bob", password="a long enough passphrase")
    app_session = device_session(target)
    url = reverse("admin:auth_user_password_change", args=[target.pk])
    form = {"password1": "an admin's long passphrase 3", "password2": "an admin's long passphrase 3",
            "usable_password": "true"}
    with database_down(lambda sql: sql.lstrip().upper().startswith("UPDATE") and "sessions_device_session" in sql):
        assert_page_503(admin_client.post(url, form))
    target.refresh_from_db()
    app_session.refresh_from_db()
    assert target.check_password("a long enough passphrase") and app_session.status == SessionStatus.ACTIVE
    assert not SecurityEvent.objects.filter(event_type="password.set_by_admin").exists()

    assert admin_client.post(url, form).status_code == 302
    target.refresh_from_db()
    app_session.refresh_from_db()
    assert target.check_password("an admin's long passphrase 3") and app_session.status == SessionStatus.REVOKED
    assert SecurityEvent.objects.filter(event_type="password.set_by_admin", user=target).count() == 1


def test_a_groups_permissions_are_on_record(admin_client: Any, admin_user: User) -> None:
    """A group's permissions are its members' rights: adding a group, granting it a permission
    and deleting it are each a ``group.changed`` naming the permissions and the members reached;
    saving it unchanged records nothing."""
    from django.contrib.auth.models import Group, Permission

    change_user = Permission.objects.get(content_type__app_label="accounts", codename="change_user")
    view_user = Permission.objects.get(content_type__app_label="accounts", codename="view_user")
    added = admin_client.post(reverse("admin:auth_group_add"), {"name": "support", "permissions": [view_user.pk]})
    assert added.status_code == 302, added.content
    group = Group.objects.get(name="support")
    User.objects.create_user("gina", password="a long enough passphrase").groups.add(group)
    url = reverse("admin:auth_group_change", args=[group.pk])
    assert admin_client.post(url, {"name": "support", "permissions": [view_user.pk]}).status_code == 302  # unchanged
    granted = admin_client.post(url, {"name": "support", "permissions": [view_user.pk, change_user.pk]})
    assert granted.status_code == 302
    deleted = admin_client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})
    assert deleted.status_code == 302 and not Group.objects.exists()

    events = [e.details for e in SecurityEvent.objects.filter(event_type="group.changed").order_by("pk")]
    assert [(e["change"], e["permissions"], e["members"]) for e in events] == [
        ("added", ["accounts.view_user"], 0),
        ("changed", ["accounts.change_user", "accounts.view_user"], 1),
        ("deleted", ["accounts.change_user", "accounts.view_user"], 1),
    ]
    assert events[1]["changed"] == ["permissions"]
    assert {e["group"] for e in events} == {"support"} and {e["admin"] for e in events} == {admin_user.username}


@pytest.mark.django_db(transaction=True)  # autocommit, as served: a deletion outside a transaction commits alone
@pytest.mark.parametrize("kind", ["user", "group"])
def test_a_deletion_whose_record_fails_deletes_nothing(admin_client: Any, admin_user: User, kind: str) -> None:
    """The changelist's delete action, the database gone as ``user.deleted`` (``group.changed``)
    is written: a 503 and the row still there, never one gone with no event on record."""
    from django.contrib.auth.models import Group

    from core.outage_testing import database_down

    model: Any = User if kind == "user" else Group
    target = User.objects.create_user("erin", password="a long enough passphrase") if kind == "user" else (
        Group.objects.create(name="support"))
    admin_client.raise_request_exception = False
    with database_down(lambda sql: sql.lstrip().upper().startswith('INSERT INTO "IDP_SECURITY_EVENT"')) as refused:
        action = admin_client.post(reverse(f"admin:{model._meta.app_label}_{kind}_changelist"),
                                   {"action": "delete_selected", "_selected_action": [target.pk], "post": "yes"})
    assert refused and action.status_code == 503
    assert model.objects.filter(pk=target.pk).exists()
    assert not SecurityEvent.objects.filter(event_type__in=["user.deleted", "group.changed"]).exists()
