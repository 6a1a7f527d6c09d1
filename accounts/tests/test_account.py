"""Account page: passkey management rules, sessions, password change, well-known files, admin."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.flows import passkeys as passkey_flow
from accounts.flows.passkeys import FactorRemovalRefused
from accounts.models import BrowserSession, Passkey
from accounts.tests.conftest import PASSWORD, code_for, login_password, signed_in
from clients.models import Client as OAuthClient
from core.models import SecurityEvent
from sessions.models import DeviceSession, SessionStatus

pytestmark = pytest.mark.django_db


def mfa_login(client: Client, device: TOTPDevice) -> None:
    login_password(client)
    assert client.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(device)}).status_code == 302


def device_session(user: Any, n: int = 1) -> DeviceSession:
    app, _ = OAuthClient.objects.get_or_create(
        client_id="app", defaults={"name": "App", "client_type": "public", "token_endpoint_auth_method": "none"}
    )
    return DeviceSession.objects.create(sid=f"ds-{n}", user=user, client=app, auth_time=timezone.now())


def test_profile_lists_factors_and_sessions(client: Any, user: Any, make_passkey: Any, frozen: Any) -> None:
    login_password(client)
    make_passkey(user, name="Phone")
    device_session(user)
    page = client.get(reverse("accounts:profile"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Phone" in body and "App" in body
    assert len(page.context["browser_sessions"]) == 1 and page.context["browser_sessions"][0].is_current


def test_rename_and_remove_passkey(client: Any, user: Any, totp_device: TOTPDevice, make_passkey: Any, frozen: Any) -> None:
    key = make_passkey(user)
    mfa_login(client, totp_device)
    client.post(reverse("accounts:passkey_rename", args=[key.pk]), {"name": "Work laptop"})
    assert Passkey.objects.get(pk=key.pk).name == "Work laptop"
    client.post(reverse("accounts:passkey_remove", args=[key.pk]))
    assert not Passkey.objects.filter(pk=key.pk).exists()
    kinds = set(SecurityEvent.objects.filter(user=user).values_list("event_type", flat=True))
    assert {"factor.passkey.renamed", "factor.passkey.removed"} <= kinds


def test_cannot_touch_another_users_passkey(client: Any, user: Any, make_user: Any, make_passkey: Any) -> None:
    other_key = make_passkey(make_user("bob"))
    login_password(client)
    client.post(reverse("accounts:passkey_remove", args=[other_key.pk]))
    client.post(reverse("accounts:passkey_rename", args=[other_key.pk]), {"name": "mine"})
    other_key.refresh_from_db()
    assert other_key.name.startswith("Key")


def test_last_factor_cannot_be_removed_when_mfa_is_required(make_user: Any, make_passkey: Any) -> None:
    user = make_user(require_mfa=True)
    first, second = make_passkey(user), make_passkey(user)
    assert passkey_flow.remove(None, user, first.pk)
    with pytest.raises(FactorRemovalRefused):
        passkey_flow.remove(None, user, second.pk)
    assert Passkey.objects.filter(pk=second.pk).exists()
    assert SecurityEvent.objects.filter(event_type="factor.passkey.remove", outcome="denied").exists()


def test_last_passkey_removable_when_totp_remains(make_user: Any, make_passkey: Any) -> None:
    user = make_user(require_mfa=True)
    TOTPDevice.objects.create(user=user, confirmed=True)
    key = make_passkey(user)
    assert passkey_flow.remove(None, user, key.pk)


def test_last_totp_cannot_be_removed_under_global_policy(
    client: Any, user: Any, totp_device: TOTPDevice, settings: Any, frozen: Any
) -> None:
    settings.IDP_REQUIRE_MFA = True
    mfa_login(client, totp_device)
    response = client.post(reverse("accounts:totp_remove"))
    assert response.status_code == 302
    assert TOTPDevice.objects.filter(pk=totp_device.pk).exists()
    assert SecurityEvent.objects.filter(event_type="factor.totp.remove", outcome="denied").exists()


def test_factor_changes_need_a_recent_strong_session(
    client: Any, user: Any, totp_device: TOTPDevice, make_passkey: Any, frozen: Any
) -> None:
    key = make_passkey(user)
    mfa_login(client, totp_device)
    frozen.shift(3600)
    response = client.post(reverse("accounts:passkey_remove", args=[key.pk]))
    assert response.status_code == 302 and "force=1" in response.url
    assert Passkey.objects.filter(pk=key.pk).exists()
    options = client.post(reverse("accounts:passkey_register_options"))
    assert options.status_code == 403 and options.json()["error"] == "reauthentication_required"


def test_passkey_registration_options(client: Any, user: Any, settings: Any) -> None:
    settings.ACCOUNTS_WEBAUTHN_RP_ID = "vigil.example"
    login_password(client)
    options = client.post(reverse("accounts:passkey_register_options")).json()
    assert options["rp"]["id"] == "vigil.example"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    user.refresh_from_db()
    assert options["user"]["id"] == user.webauthn_user_handle
    assert str(user.subject) not in options["user"]["id"]


def test_passwordless_options_have_no_allow_list(client: Any) -> None:
    options = client.post(reverse("accounts:passkey_auth_options"), '{"purpose": "login"}',
                          content_type="application/json").json()
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"


def test_second_factor_options_list_the_pending_users_keys(client: Any, user: Any, make_passkey: Any) -> None:
    key = make_passkey(user, credential_id="AAAA", transports=["internal"])
    login_password(client)
    options = client.post(reverse("accounts:passkey_auth_options"), '{"purpose": "second_factor"}',
                          content_type="application/json").json()
    assert [c["id"] for c in options["allowCredentials"]] == [key.credential_id]


def test_password_change_signs_out_other_sessions_and_revokes_apps(user: Any, frozen: Any) -> None:
    mine, other = Client(), Client()
    login_password(mine)
    login_password(other)
    app_session = device_session(user)
    assert BrowserSession.objects.open().filter(user=user).count() == 2
    sid_before = signed_in(mine)["sid"]

    new_password = "a different long passphrase 7"
    response = mine.post(reverse("accounts:password_change"), {
        "old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password})
    assert response.status_code == 302
    assert mine.get(reverse("accounts:profile")).status_code == 200  # this session continues
    assert signed_in(mine)["sid"] == sid_before
    assert other.get(reverse("accounts:profile")).status_code == 302  # signed out
    app_session.refresh_from_db()
    assert app_session.status == SessionStatus.REVOKED and app_session.status_reason == "password_changed"
    assert app_session.revoked_at is not None
    assert BrowserSession.objects.open().filter(user=user).count() == 1
    assert SecurityEvent.objects.filter(event_type="password.changed", user=user).exists()


def test_guessing_the_current_password_on_the_change_page_is_throttled(client: Any, user: Any) -> None:
    """A session cookie (a borrowed laptop) must not turn the change page into an unthrottled
    password oracle: wrong current passwords count as failed password attempts, in the same
    buckets as sign-in, until the page answers 429 with Retry-After, and nothing changes."""
    login_password(client)
    statuses = []
    for i in range(12):
        response = client.post(reverse("accounts:password_change"), {
            "old_password": f"guess {i}", "new_password1": "a new long passphrase 9",
            "new_password2": "a new long passphrase 9"})
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[0] == 400 and statuses[-1] == 429, statuses
    assert int(response["Retry-After"]) >= 1 and b'role="alert"' in response.content
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    failures = SecurityEvent.objects.filter(event_type="login.password", outcome="failure", user=user)
    assert failures.count() == statuses.count(400) and failures[0].details["step"] == "password_change"
    assert SecurityEvent.objects.filter(event_type="login.password", outcome="denied", reason="throttled").exists()
    # the right current password is refused while throttled too: the wait holds for everyone
    blocked = client.post(reverse("accounts:password_change"), {
        "old_password": PASSWORD, "new_password1": "a new long passphrase 9", "new_password2": "a new long passphrase 9"})
    assert blocked.status_code == 429
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


@pytest.mark.parametrize("old", [PASSWORD, "a wrong guess"], ids=["right", "wrong"])
def test_a_cache_outage_on_the_change_page_is_a_readable_503_that_changes_and_counts_nothing(
        client: Any, user: Any, settings: Any, old: str) -> None:
    """The change page's throttle lives in the cache: while it is down the page says so (503,
    Retry-After) and nothing happens: no new password, no session ended, no failure counted."""
    from core.outage_testing import cache_down
    from idp.tests.test_outage import assert_page_503

    login_password(client)
    app_session = device_session(user, 1)
    last = SecurityEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    form = {"old_password": old, "new_password1": "a new long passphrase 9", "new_password2": "a new long passphrase 9"}
    with cache_down(settings):
        assert_page_503(client.post(reverse("accounts:password_change"), form))
    user.refresh_from_db()
    app_session.refresh_from_db()
    assert user.check_password(PASSWORD) and app_session.status == SessionStatus.ACTIVE
    assert not SecurityEvent.objects.filter(pk__gt=last, event_type__in=["login.password", "password.changed"]).exists()
    assert client.get(reverse("accounts:profile")).status_code == 200  # still signed in
    if old == PASSWORD:  # and the same form works once the cache is back
        assert client.post(reverse("accounts:password_change"), form).status_code in (200, 302)
        user.refresh_from_db()
        assert user.check_password("a new long passphrase 9")
    else:  # the outage counted nothing: the first failure afterwards is the first on record
        assert client.post(reverse("accounts:password_change"), form).status_code == 400
        assert SecurityEvent.objects.filter(event_type="login.password", outcome="failure", user=user).count() == 1


def _revoking_app_sessions(sql: str) -> bool:
    return sql.lstrip().upper().startswith("UPDATE") and "sessions_device_session" in sql


def test_a_database_failure_midway_through_a_password_change_changes_nothing(user: Any) -> None:
    """The new password is saved, then the database fails while the app sessions are revoked: a
    readable 503 that changed nothing (the old password still signs in, the other browser and
    the app still signed in, nothing on record), and the same form sent again changes it all.
    Committed piecemeal, the password changed with the app sessions (perhaps a thief's) alive
    and no change on record or announced."""
    from core.outage_testing import database_down
    from idp.tests.test_outage import assert_page_503

    mine, other = Client(), Client()
    login_password(mine)
    login_password(other)
    app_session = device_session(user)
    last = SecurityEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    form = {"old_password": PASSWORD, "new_password1": "a new long passphrase 9", "new_password2": "a new long passphrase 9"}
    with database_down(_revoking_app_sessions) as refused:
        assert_page_503(mine.post(reverse("accounts:password_change"), form))
    assert refused
    user.refresh_from_db()
    app_session.refresh_from_db()
    assert user.check_password(PASSWORD) and app_session.status == SessionStatus.ACTIVE
    assert other.get(reverse("accounts:profile")).status_code == 200
    assert not SecurityEvent.objects.filter(pk__gt=last).exclude(event_type="login.password").exists()

    assert mine.post(reverse("accounts:password_change"), form).status_code == 302  # the retry
    user.refresh_from_db()
    app_session.refresh_from_db()
    assert user.check_password("a new long passphrase 9") and app_session.status == SessionStatus.REVOKED
    assert other.get(reverse("accounts:profile")).status_code == 302
    assert mine.get(reverse("accounts:profile")).status_code == 200
    assert SecurityEvent.objects.filter(event_type="password.changed", user=user).count() == 1


def test_sign_out_one_browser_session(user: Any) -> None:
    mine, other = Client(), Client()
    login_password(mine)
    login_password(other)
    target = BrowserSession.objects.open().filter(user=user).order_by("pk").last()
    assert target is not None
    mine.post(reverse("accounts:session_sign_out", args=[target.pk]))
    assert other.get(reverse("accounts:profile")).status_code == 302
    assert mine.get(reverse("accounts:profile")).status_code == 200


def test_revoke_one_device_session(client: Any, user: Any, make_user: Any) -> None:
    mine, foreign = device_session(user, 1), device_session(make_user("bob"), 2)
    login_password(client)
    client.post(reverse("accounts:device_revoke", args=[mine.pk]))
    client.post(reverse("accounts:device_revoke", args=[foreign.pk]))
    mine.refresh_from_db()
    foreign.refresh_from_db()
    assert mine.status == SessionStatus.REVOKED and foreign.status == SessionStatus.ACTIVE


def test_session_index_follows_key_rotation(client: Any, user: Any, totp_device: TOTPDevice, frozen: Any) -> None:
    mfa_login(client, totp_device)
    rows = BrowserSession.objects.filter(user=user)
    assert rows.count() == 1
    assert Session.objects.count() == 1
    assert rows.get().amr == ["mfa", "otp", "pwd"]


def test_logout_ends_the_session_row(client: Any, user: Any) -> None:
    login_password(client)
    client.post(reverse("accounts:logout"))
    assert BrowserSession.objects.open().count() == 0


def test_well_known_documents(client: Any, settings: Any) -> None:
    settings.ACCOUNTS_ASSET_LINKS = [{"package_name": "com.example.app", "sha256_cert_fingerprints": ["aa:bb"]}]
    settings.ACCOUNTS_APPLE_APP_IDS = '["ABCDE12345.com.example.app"]'
    links = client.get("/.well-known/assetlinks.json")
    assert links["Content-Type"] == "application/json"
    assert links.json() == [{
        "relation": ["delegate_permission/common.handle_all_urls", "delegate_permission/common.get_login_creds"],
        "target": {"namespace": "android_app", "package_name": "com.example.app", "sha256_cert_fingerprints": ["AA:BB"]},
    }]
    aasa = client.get("/.well-known/apple-app-site-association")
    assert aasa.json() == {"webcredentials": {"apps": ["ABCDE12345.com.example.app"]}}


def test_admin_reset_factors(admin_client: Any, user: Any, totp_device: TOTPDevice, make_passkey: Any,
                             recovery_codes: list[str]) -> None:
    make_passkey(user)
    app_session = device_session(user)
    page = admin_client.get(reverse("admin:accounts_user_change", args=[user.pk]))
    assert page.status_code == 200
    response = admin_client.post(reverse("admin:accounts_user_changelist"),
                                 {"action": "reset_factors", "_selected_action": [user.pk]})
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not Passkey.objects.filter(user=user).exists()
    app_session.refresh_from_db()
    assert app_session.status == SessionStatus.REVOKED
    event = SecurityEvent.objects.get(event_type="factor.reset", user=user)
    assert event.details["actor"] == "admin"


def test_admin_reset_factors_signs_the_users_browsers_out(admin_client: Any, client: Any, user: Any) -> None:
    """The browser of a lost phone kept its MFA sign-in (and could enroll a factor of its own
    at once); after the reset it is signed out. The admin's own session is untouched."""
    login_password(client)
    assert client.get(reverse("accounts:profile")).status_code == 200
    response = admin_client.post(reverse("admin:accounts_user_changelist"),
                                 {"action": "reset_factors", "_selected_action": [user.pk]})
    assert response.status_code == 302
    assert client.get(reverse("accounts:profile")).status_code == 302
    assert admin_client.get(reverse("admin:index")).status_code == 200
    event = SecurityEvent.objects.get(event_type="factor.reset", user=user)
    assert event.details["browser_sessions"] == 1


def test_a_database_failure_midway_through_a_factor_reset_changes_nothing(admin_client: Any, client: Any, user: Any,
                                                                         totp_device: TOTPDevice) -> None:
    """The factors are deleted, then the database fails while the app sessions are revoked: a
    readable 503 that changed nothing (the app and the browser still signed in, the factor
    still there, nothing on record), and the action run again resets it all."""
    from core.outage_testing import database_down
    from idp.tests.test_outage import assert_page_503

    login_password(client)
    client.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(totp_device)})
    app_session = device_session(user)
    action = {"action": "reset_factors", "_selected_action": [user.pk]}
    with database_down(_revoking_app_sessions) as refused:
        assert_page_503(admin_client.post(reverse("admin:accounts_user_changelist"), action))
    assert refused
    app_session.refresh_from_db()
    assert app_session.status == SessionStatus.ACTIVE and TOTPDevice.objects.filter(user=user).exists()
    assert client.get(reverse("accounts:profile")).status_code == 200
    assert not SecurityEvent.objects.filter(event_type__in=["factor.reset", "factor.totp.removed"]).exists()

    assert admin_client.post(reverse("admin:accounts_user_changelist"), action).status_code == 302
    app_session.refresh_from_db()
    assert app_session.status == SessionStatus.REVOKED and not TOTPDevice.objects.filter(user=user).exists()
    assert client.get(reverse("accounts:profile")).status_code == 302
    assert SecurityEvent.objects.filter(event_type="factor.reset", user=user).count() == 1


def test_pending_device_is_not_a_factor(client: Any, user: Any) -> None:
    login_password(client)
    client.get(reverse("accounts:totp_enroll"))
    assert TOTPDevice.objects.filter(user=user, confirmed=False).exists()
    client.post(reverse("accounts:logout"))
    response = login_password(client, next="/accounts/")
    assert response.url == "/accounts/"  # no second step for an unconfirmed device


def test_stale_pending_passkey_challenge_expires(client: Any, user: Any, frozen: Any) -> None:
    from accounts import webauthn_rp

    client.post(reverse("accounts:passkey_auth_options"), '{"purpose": "login"}', content_type="application/json")
    frozen.shift(timedelta(minutes=6))
    response = client.post(reverse("accounts:passkey_auth_verify"), '{"purpose": "login", "credential": {}}',
                           content_type="application/json")
    assert response.json()["error"] == "challenge_expired"
    assert webauthn_rp.CHALLENGE_SESSION_KEY in client.session


def test_admin_login_goes_through_the_accounts_login(client: Any, make_user: Any) -> None:
    response = client.get(reverse("admin:login") + "?next=/admin/")
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))
    make_user("staff", is_staff=True)
    TOTPDevice.objects.create(user=make_user("nonstaff"), confirmed=False)
    login_password(client, username="nonstaff")
    assert client.get(reverse("admin:login")).status_code == 403
    assert client.get("/admin/").status_code == 302


def test_system_checks(settings: Any) -> None:
    from accounts.checks import check_webauthn

    settings.IDP_ISSUER = "https://login.example.com"
    settings.ACCOUNTS_WEBAUTHN_RP_ID = "example.com"
    settings.ACCOUNTS_WEBAUTHN_ALLOWED_ORIGINS = ["https://login.example.com", "android:apk-key-hash:abc"]
    assert check_webauthn() == []
    settings.ACCOUNTS_WEBAUTHN_RP_ID = "evil.example"
    settings.ACCOUNTS_WEBAUTHN_ALLOWED_ORIGINS = ["http://login.example.com"]
    settings.ACCOUNTS_ASSET_LINKS = '[{"package_name": "x"}]'
    assert {p.id for p in check_webauthn()} == {"accounts.E002", "accounts.W001", "accounts.E004"}
    settings.ACCOUNTS_ASSET_LINKS = "[not json"
    assert [p.id for p in check_webauthn()] == ["accounts.E001"]


def test_login_hint_prefills_the_username(client: Any) -> None:
    page = client.get(reverse("accounts:login") + "?login_hint=alice%40example.com")
    assert 'value="alice@example.com"' in page.content.decode()


@pytest.mark.parametrize("name", ["accounts:passkey_auth_options", "accounts:passkey_auth_verify"])
def test_passkey_json_nested_too_deep_is_not_a_500(client: Any, user: Any, name: str) -> None:
    """Unauthenticated JSON: nested past Python's parser's depth (RecursionError) it is read as
    an empty body, as malformed JSON is, and nobody is signed in."""
    response = client.post(reverse(name), "[" * 3000, content_type="application/json")
    assert response.status_code in (200, 400), response.status_code
    assert "_auth_user_id" not in client.session


def test_passkey_registration_json_nested_too_deep_is_malformed(client: Any, user: Any) -> None:
    login_password(client)
    response = client.post(reverse("accounts:passkey_register"), "[" * 3000, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "malformed"
    assert not Passkey.objects.exists()
