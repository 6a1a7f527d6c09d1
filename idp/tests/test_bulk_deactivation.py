"""A bulk deactivation through Django (``core.deactivation``) as an operator's script writes it:
``is_active`` spelled any way Django stores as false (``"False"``, ``0``, ``Value(False)``, a
``Case``) ends the families as ``False`` does; the rows are locked before they are read, so a
concurrent reactivation cannot slip between the read and the write; a rollback (the script
failing after its update, or a revocation failing half-way) leaves every family live and
announces nothing, not even once committed; and thousands of users cost queries per chunk,
not per user."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import Case, Value, When
from django.test.utils import CaptureQueriesContext

from clients.models import Client
from core.models import SecurityEvent
from idp.backchannel import listener
from idp.models import PendingLogout
from sessions.flows import revocation
from sessions.models import AccessToken, DeviceSession, RefreshToken, SessionStatus

pytestmark = pytest.mark.django_db


def _rows() -> tuple[list[Any], list[Any], list[Any]]:
    return (
        list(AccessToken.objects.order_by("pk").values_list("jti", "revoked_at")),
        list(RefreshToken.objects.order_by("pk").values_list("pk", "revoked_at", "rotated_at")),
        list(DeviceSession.objects.order_by("pk").values_list("pk", "status")),
    )


def _revoked(user: Any) -> bool:
    session = DeviceSession.objects.get(user=user)
    return session.status == SessionStatus.REVOKED and session.status_reason == "user_deactivated"


FALSE_SPELLINGS = {
    "the string False": "False",
    "the string 0": "0",
    "zero": 0,
    "Value(False)": Value(False),
    "a Case": Case(When(username="alice", then=Value(False)), default=Value(True)),
}


@pytest.mark.parametrize("spelling", list(FALSE_SPELLINGS), ids=str)
def test_an_update_storing_false_however_spelled_revokes(spelling: str, tokens: dict[str, Any], user: Any) -> None:
    users = type(user).objects
    assert users.filter(pk=user.pk).update(is_active=FALSE_SPELLINGS[spelling]) == 1
    user.refresh_from_db()
    assert user.is_active is False
    assert _revoked(user)
    assert SecurityEvent.objects.filter(event_type="session.revoked", reason="user_deactivated").count() == 1


@pytest.mark.parametrize("spelling", ["False", "0", 0], ids=repr)
def test_a_bulk_update_storing_false_however_spelled_revokes(spelling: Any, tokens: dict[str, Any], user: Any) -> None:
    user.is_active = spelling
    assert type(user).objects.bulk_update([user], ["is_active"]) == 1
    assert type(user).objects.get(pk=user.pk).is_active is False
    assert _revoked(user)


@pytest.mark.parametrize("spelling", ["True", "1", 1, Value(True)], ids=repr)
def test_an_update_storing_true_however_spelled_revokes_nothing(spelling: Any, tokens: dict[str, Any],
                                                                 user: Any) -> None:
    events, before = SecurityEvent.objects.count(), _rows()
    assert type(user).objects.filter(pk=user.pk).update(is_active=spelling) == 1
    assert (SecurityEvent.objects.count(), _rows()) == (events, before)


def test_a_client_deactivated_as_the_string_false_ends_its_families(tokens: dict[str, Any], mobile_client: Any) -> None:
    client = mobile_client.client
    assert Client.objects.filter(pk=client.pk).update(is_active="False") == 1
    assert not RefreshToken.objects.filter(session__client=client, revoked_at=None).exists()
    assert not AccessToken.objects.filter(client=client, revoked_at=None).exists()


def test_the_rows_are_locked_before_they_are_read(tokens: dict[str, Any], user: Any, django_user_model: Any) -> None:
    """Read committed: a row read as inactive, then reactivated by another transaction before
    the write, would be deactivated with its new families left live. Every row the write
    matches (active or not) is locked by the read before the write."""
    django_user_model.objects.create_user("bob", is_active=False)
    with CaptureQueriesContext(connection) as queries:
        django_user_model.objects.filter(username__in=["alice", "bob"]).update(is_active=False)
    statements = [q["sql"] for q in queries.captured_queries]
    read = next(i for i, sql in enumerate(statements) if sql.startswith("SELECT") and '"accounts_user"' in sql)
    write = next(i for i, sql in enumerate(statements) if sql.startswith("UPDATE") and '"accounts_user"' in sql)
    assert read < write and statements[read].endswith("FOR UPDATE")
    assert '"is_active"' not in statements[read].split("WHERE", 1)[1]  # the inactive ones locked as well


# --- rollbacks: nothing revoked, nothing announced ----------------------------------------------


@pytest.fixture
def announced(tokens: dict[str, Any], mobile_client: Any) -> Any:
    client = mobile_client.client
    client.backchannel_logout_uri = "https://rp.example.com/backchannel-logout"
    client.save()
    return client


def test_a_script_failing_after_its_update_revokes_and_announces_nothing(
    announced: Any, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    events, before = SecurityEvent.objects.count(), _rows()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            type(user).objects.filter(pk=user.pk).update(is_active=False)
            assert _revoked(user) and PendingLogout.objects.exists()  # inside: revoked, the logout owed
            raise RuntimeError("the script fails after its update")
    assert callbacks == []  # no back-channel logout queued, no SET pushed
    assert (SecurityEvent.objects.count(), _rows()) == (events, before)
    assert not PendingLogout.objects.exists()
    assert type(user).objects.get(pk=user.pk).is_active


def test_a_revocation_failing_half_way_rolls_the_whole_deactivation_back(
    announced: Any, user: Any, django_user_model: Any, monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """Two users: the first one's family revoked, the second's revocation fails: the update
    itself is undone, so no user is left inactive with live families, and nothing is announced."""
    other = django_user_model.objects.create_user("bob")
    second = DeviceSession.objects.get(user=user)
    second.pk, second.user, second.sid, second.authorization_code = None, other, "bob-session", None
    second.save()
    real, calls = revocation.revoke_session, []

    def failing_second(session: Any, *args: Any, **kwargs: Any) -> bool:
        calls.append(session.pk)
        if len(calls) == 2:
            raise RuntimeError("the database refused the second revocation")
        return real(session, *args, **kwargs)

    monkeypatch.setattr(revocation, "revoke_session", failing_second)
    events, before = SecurityEvent.objects.count(), _rows()
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        django_user_model.objects.filter(pk__in=[user.pk, other.pk]).update(is_active=False)
    assert len(calls) == 2 and callbacks == []
    assert (SecurityEvent.objects.count(), _rows()) == (events, before)
    assert not PendingLogout.objects.exists()
    assert set(django_user_model.objects.filter(pk__in=[user.pk, other.pk]).values_list("is_active", flat=True)) == {
        True}


def test_a_committed_bulk_deactivation_announces_once_committed(
    announced: Any, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        type(user).objects.filter(pk=user.pk).update(is_active=False)
    assert PendingLogout.objects.count() == 1  # the logout owed, and queued only on commit
    assert [c.args for c in callbacks if getattr(c, "func", None) is listener.enqueue] == [
        (PendingLogout.objects.get().session_id,)]


# --- size: chunks, not a query per user ---------------------------------------------------------


def test_thousands_of_users_cost_queries_per_chunk(django_user_model: Any, django_assert_max_num_queries: Any) -> None:
    """A directory sync deactivating 1200 users without families: a handful of statements per
    chunk of rows, not a query per user (and only the ids of the rows are kept in memory)."""
    django_user_model.objects.bulk_create(
        [django_user_model(username=f"user{n}", email=f"user{n}@example.com") for n in range(1200)])
    with django_assert_max_num_queries(12):
        assert django_user_model.objects.filter(username__startswith="user").update(is_active=False) == 1200
    assert not django_user_model.objects.filter(username__startswith="user", is_active=True).exists()
