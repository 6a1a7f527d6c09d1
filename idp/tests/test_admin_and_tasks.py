"""Admin pages for operators, and the periodic tasks (run in-process and on a real worker)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from core import keys
from core.models import KeyStatus, SigningKey
from idp.tasks import purge_expired, rotate_keys_if_due
from sessions.models import AccessToken, DeviceSession, SessionStatus

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "name",
    ["clients_client", "core_signingkey", "device_sessions_authorizationcode", "idp_consent", "core_securityevent",
     "device_sessions_devicesession", "device_sessions_accesstoken"],
)
def test_admin_changelists_render(admin_client, tokens, name):
    response = admin_client.get(reverse(f"admin:{name}_changelist"))
    assert response.status_code == 200


def test_admin_revokes_session(admin_client, tokens):
    session = DeviceSession.objects.get()
    response = admin_client.post(
        reverse("admin:device_sessions_devicesession_changelist"),
        {"action": "revoke", "_selected_action": [session.pk]},
    )
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.status == SessionStatus.REVOKED and session.status_reason == "revoked_by_admin"


def test_security_events_are_read_only(admin_client, tokens):
    from core.models import SecurityEvent

    event = SecurityEvent.objects.first()
    assert event is not None
    assert admin_client.post(reverse("admin:core_securityevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    with pytest.raises(ValueError):
        event.save()


def test_a_signing_key_cannot_be_deleted_in_the_admin(admin_client):
    """Keys leave by the rotation's schedule; deleting one broke the tokens it signed, unrecorded."""
    keys.ensure_keys()
    key = SigningKey.objects.order_by("pk")[0]
    before = SigningKey.objects.count()
    assert admin_client.post(reverse("admin:core_signingkey_delete", args=[key.pk]), {"post": "yes"}).status_code == 403
    admin_client.post(reverse("admin:core_signingkey_changelist"),
                      {"action": "delete_selected", "_selected_action": [key.pk], "post": "yes"})
    assert SigningKey.objects.count() == before


def test_deleting_a_family_in_the_admin_revokes_it_on_record_first(admin_client, tokens):
    from core.models import SecurityEvent

    session = DeviceSession.objects.get()
    response = admin_client.post(reverse("admin:device_sessions_devicesession_changelist"),
                                 {"action": "delete_selected", "_selected_action": [session.pk], "post": "yes"})
    assert response.status_code == 302 and not DeviceSession.objects.exists()
    revoked = SecurityEvent.objects.get(event_type="session.revoked", session_id=session.sid)
    assert revoked.reason == "revoked_by_admin"


def test_an_access_token_is_revoked_on_record_in_the_admin_never_deleted(admin_client, tokens):
    """Deleting the row was a silent revocation (the JWT then unknown everywhere), unrecorded."""
    from core.models import SecurityEvent

    access = AccessToken.objects.get()
    changelist = reverse("admin:device_sessions_accesstoken_changelist")
    assert admin_client.post(reverse("admin:device_sessions_accesstoken_delete", args=[access.pk]),
                             {"post": "yes"}).status_code == 403
    admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [access.pk], "post": "yes"})
    assert AccessToken.objects.filter(pk=access.pk, revoked_at=None).exists()
    assert not SecurityEvent.objects.filter(event_type="oauth.revocation").exists()

    for _ in range(2):  # the second time it is already revoked: nothing more on record
        response = admin_client.post(changelist, {"action": "revoke", "_selected_action": [access.pk]})
        assert response.status_code == 302
    access.refresh_from_db()
    assert access.revoked_at is not None and not access.is_active()
    event = SecurityEvent.objects.get(event_type="oauth.revocation")
    assert event.reason == "access_token" and event.details["jti"] == access.jti
    assert event.details["admin"] == "admin" and event.details["initiator"] == "admin"
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE  # the family keeps refreshing


def test_a_revoked_access_token_row_may_go_and_family_and_client_deletions_revoke_first(admin_client, tokens,
                                                                                        mobile_client):
    from core.models import SecurityEvent

    access = AccessToken.objects.get()
    admin_client.post(reverse("admin:device_sessions_accesstoken_changelist"),
                      {"action": "revoke", "_selected_action": [access.pk]})
    assert admin_client.post(reverse("admin:device_sessions_accesstoken_delete", args=[access.pk]),
                             {"post": "yes"}).status_code == 302
    assert not AccessToken.objects.filter(pk=access.pk).exists()

    session = DeviceSession.objects.get()
    client = mobile_client.client
    response = admin_client.post(reverse("admin:clients_client_delete", args=[client.pk]), {"post": "yes"})
    assert response.status_code == 302 and not DeviceSession.objects.exists()
    revoked = SecurityEvent.objects.get(event_type="session.revoked", session_id=session.sid)
    assert revoked.reason == "client_deleted" and revoked.details["initiator"] == "admin"


def test_a_deleted_clients_tokens_outside_its_families_are_revoked_on_record(admin_client, service_client):
    """Client-credentials tokens (no family) went with the client's rows, unrecorded."""
    from django.utils import timezone

    from core.models import SecurityEvent
    from sessions.flows.tokens import issue_access_token

    client = service_client.client
    _, jti, _ = issue_access_token(client=client, user=None, scope="", audience=[client.client_id], session=None,
                                   now=timezone.now())
    response = admin_client.post(reverse("admin:clients_client_delete", args=[client.pk]), {"post": "yes"})
    assert response.status_code == 302 and not AccessToken.objects.filter(jti=jti).exists()
    event = SecurityEvent.objects.get(event_type="oauth.revocation")
    assert (event.reason, event.client_id, event.details["jti"]) == ("access_token", client.client_id, jti)
    assert (event.details["initiator"], event.details["cause"]) == ("admin", "client_deleted")


def test_staff_who_may_not_delete_access_tokens_cannot_delete_a_client_holding_live_ones(service_client,
                                                                                         django_user_model):
    """The cascade's permission check stays for them (the admin lists what blocks it)."""
    from django.contrib.auth.models import Permission
    from django.test import Client
    from django.utils import timezone

    from accounts.testing import sign_in_with_second_factor
    from sessions.flows.tokens import issue_access_token

    staff = django_user_model.objects.create_user("staff", password="a long staff passphrase 1", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["delete_client", "view_client",
                                                                          "view_accesstoken"]))
    target = service_client.client
    issue_access_token(client=target, user=None, scope="", audience=[target.client_id], session=None,
                       now=timezone.now())
    client = sign_in_with_second_factor(Client(), staff, "a long staff passphrase 1")
    page = client.get(reverse("admin:clients_client_delete", args=[target.pk]))
    assert page.status_code == 200 and "access token" in page.content.decode().lower()
    client.post(reverse("admin:clients_client_delete", args=[target.pk]), {"post": "yes"})
    assert AccessToken.objects.filter(client=target, revoked_at=None).exists()
    changelist = client.get(reverse("admin:device_sessions_accesstoken_changelist"))
    assert changelist.status_code == 200 and b'value="revoke"' not in changelist.content  # no change permission


def test_admin_client_edits_are_on_record(admin_client, mobile_client):
    from core.models import SecurityEvent

    client = mobile_client.client
    page = admin_client.get(reverse("admin:clients_client_change", args=[client.pk]))
    form = page.context["adminform"].form
    import json

    data = {name: value for name, value in form.initial.items() if value is not None and not isinstance(value, list)}
    data.update({name: json.dumps(value) for name, value in form.initial.items() if isinstance(value, list)})
    data.update({"first_party": "", "is_active": "on", "auth_methods": form.initial.get("auth_methods", ["none"])})
    for name in list(data):
        if data[name] is True:
            data[name] = "on"
        elif data[name] is False:
            del data[name]
    response = admin_client.post(reverse("admin:clients_client_change", args=[client.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    client.refresh_from_db()
    assert client.first_party is False
    event = SecurityEvent.objects.get(event_type="client.changed", client_id=client.client_id)
    assert "first_party" in event.details["changed"] and event.details["admin"] == "admin"


def test_an_admin_withdrawing_a_consent_is_on_record(admin_client, tokens, user, mobile_client):
    from core.models import SecurityEvent
    from idp.models import Consent

    consent = Consent.objects.create(user=user, client=mobile_client.client, scopes=["openid"])
    assert admin_client.get(reverse("admin:idp_consent_change", args=[consent.pk])).status_code == 200  # view only
    response = admin_client.post(reverse("admin:idp_consent_delete", args=[consent.pk]), {"post": "yes"})
    assert response.status_code == 302 and not Consent.objects.exists()
    assert SecurityEvent.objects.filter(event_type="oauth.consent_revoked", user=user).count() == 1


def test_deleting_a_user_revokes_their_families_on_record(admin_client, tokens, user):
    from core.models import SecurityEvent

    session = DeviceSession.objects.get()
    response = admin_client.post(reverse("admin:accounts_user_delete", args=[user.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not DeviceSession.objects.exists()
    revoked = SecurityEvent.objects.get(event_type="session.revoked", session_id=session.sid)
    assert revoked.reason == "user_deleted"


def test_rotate_task_publishes_successor_when_due(time_machine):
    time_machine.move_to(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    keys.ensure_keys()
    assert rotate_keys_if_due() == []
    time_machine.move_to(dt.datetime(2026, 2, 5, tzinfo=dt.UTC))
    changes = rotate_keys_if_due()
    assert len([c for c in changes if c.startswith("published")]) == 3
    assert SigningKey.objects.filter(status=KeyStatus.NEXT).count() == 3
    assert rotate_keys_if_due() == []  # idempotent: a successor is already waiting


def test_purge_removes_only_long_expired_state(tokens, time_machine):
    assert purge_expired() == {"codes": 0, "access_tokens": 0, "refresh_tokens": 0, "device_authorizations": 0}
    time_machine.move_to(dt.datetime.now(tz=dt.UTC) + dt.timedelta(days=2))
    assert purge_expired()["access_tokens"] == 1
    assert AccessToken.objects.count() == 0


def test_security_event_log_line_only_after_commit(caplog, django_capture_on_commit_callbacks):
    import json as _json

    from django.db import transaction

    from core.events import record
    from core.logging import JsonLineFormatter

    caplog.set_level("INFO", logger="vigil.security")
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                record("test.rolled_back", reason="x")  # type: ignore[arg-type]  # an event type only this test records
                raise RuntimeError
        record("test.kept", reason="y\x00z", note="a\x00b")  # type: ignore[arg-type]  # an event type only this test records
    lines = [JsonLineFormatter().format(r) for r in caplog.records if r.name == "vigil.security"]
    events = [_json.loads(line) for line in lines]
    assert [e["event"] for e in events] == ["test.kept"]
    assert events[0]["details"] == {"note": "a\\0b"} and "\x00" not in lines[0]


@pytest.mark.django_db(transaction=True)  # django-celery-beat closes old connections as it works
def test_beat_keeps_admin_edits_of_code_schedules():
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from vigil.celery import app
    from vigil.celery_beat import DatabaseScheduler

    scheduler = DatabaseScheduler(app=app, lazy=True)
    scheduler.update_from_dict({"rotate-signing-keys": {"task": "idp.rotate_keys_if_due", "schedule": 3600.0}})
    row = PeriodicTask.objects.get(name="rotate-signing-keys")
    assert row.interval.every == 3600
    row.interval = IntervalSchedule.objects.create(every=7200, period=IntervalSchedule.SECONDS)
    row.save()  # an admin's edit
    DatabaseScheduler(app=app, lazy=True).update_from_dict(
        {"rotate-signing-keys": {"task": "idp.rotate_keys_if_due", "schedule": 3600.0}}
    )
    assert PeriodicTask.objects.get(name="rotate-signing-keys").interval.every == 7200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_beat_writing_its_last_run_never_undoes_an_admin_disabling_the_task():
    """Beat records an entry's last run after each send (``beat_sync_every = 1``) from the row it
    loaded earlier. The admin disables the task meanwhile, before beat writes or while it
    writes: ``enabled`` must stay off. django-celery-beat read the row and saved every field
    back, so an admin's commit between its read and its write was undone and the task kept
    running (caught by tests/test_multi_instance.py on busy cores)."""
    import psycopg
    from django.db import connection
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from vigil.celery import app
    from vigil.celery_beat import DatabaseScheduler

    assert connection.vendor == "postgresql"
    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    db = connection.settings_dict
    admin = psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"] or None,
                            dbname=db["NAME"], autocommit=True)

    def disable(pk: int) -> None:
        admin.execute("UPDATE django_celery_beat_periodictask SET enabled = false WHERE id = %s", [pk])

    try:
        for moment in ("before beat writes", "after beat's first statement"):
            task = PeriodicTask.objects.create(name=f"purge often, {moment}", interval=every,
                                               task="idp.purge_expired_codes_and_tokens")
            entry = next(DatabaseScheduler.Entry(PeriodicTask.objects.get(pk=task.pk), app=app))  # sent once
            pending = [task.pk] if moment != "before beat writes" else []
            if not pending:
                disable(task.pk)

            def after_first(execute, sql, params, many, context, pending=pending):
                result = execute(sql, params, many, context)
                if pending:
                    disable(pending.pop())
                return result

            with connection.execute_wrapper(after_first):
                entry.save()
            stored = PeriodicTask.objects.get(pk=task.pk)
            assert stored.enabled is False, moment
            assert stored.total_run_count == 1, moment  # beat's own bookkeeping is kept
    finally:
        admin.close()


def test_deactivating_a_client_ends_its_sessions_and_tokens_at_once(admin_client, tokens, mobile_client,
                                                                    service_client):
    """Its access tokens were still active at userinfo and introspection until they expired
    (only its refresh tokens stopped, the client no longer authenticating), though the action
    says its tokens stop: they end at once, on record, as a deleted client's do."""
    from django.test import Client
    from django.utils import timezone

    from core.models import SecurityEvent
    from sessions.flows.tokens import issue_access_token

    from .test_introspection_revocation_userinfo import introspect

    client = mobile_client.client
    _, jti, _ = issue_access_token(client=client, user=None, scope="", audience=[client.client_id], session=None,
                                   now=timezone.now())
    session = DeviceSession.objects.get()
    response = admin_client.post(reverse("admin:clients_client_changelist"),
                                 {"action": "deactivate", "_selected_action": [client.pk]})
    assert response.status_code == 302
    userinfo = Client().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert userinfo.status_code == 401 and userinfo.json()["error"] == "invalid_token"
    assert introspect(service_client, tokens["access_token"]).json() == {"active": False}
    session.refresh_from_db()
    assert session.status == SessionStatus.REVOKED and session.status_reason == "client_deactivated"
    revoked = SecurityEvent.objects.get(event_type="session.revoked", session_id=session.sid)
    assert revoked.details["initiator"] == "admin"
    outside = SecurityEvent.objects.get(event_type="oauth.revocation", details__jti=jti)
    assert outside.details["cause"] == "client_deactivated"
    assert not AccessToken.objects.filter(client=client, revoked_at=None).exists()
