"""core/sql.py: statements built once must give exactly what the ORM gives."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clients.models import Client
from core.models import SecurityEvent
from core.sql import JoinedQuery, Part, Statement, insert
from sessions.flows.refresh import find_refresh_token
from sessions.models import DeviceSession, RefreshToken
from tests.written_elsewhere import elsewhere

pytestmark = pytest.mark.django_db

FIELDS = ["id", "sid", "user_id", "client_id", "scope", "resource", "auth_time", "amr", "acr", "status", "last_ip",
          "last_refresh_at", "device_id"]


def orm_view(obj: Any, names: list[str]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in names}


def test_a_joined_row_equals_the_orm_instances(tokens: Any) -> None:
    orm = RefreshToken.objects.select_related("session__user").get(token_hash__isnull=False, rotated_at=None)
    query = JoinedQuery(lambda: [
        Part(RefreshToken, "t"),
        Part(DeviceSession, "s", on="s.id = t.session_id", parent="t", attr="session"),
    ], where="t.id = %s")
    found = query.first([orm.pk])
    assert found is not None
    token = found["t"]
    assert isinstance(token, RefreshToken)
    assert orm_view(token, ["id", "token_hash", "scope", "created_at", "expires_at", "rotated_at"]) == orm_view(
        orm, ["id", "token_hash", "scope", "created_at", "expires_at", "rotated_at"])
    assert orm_view(token.session, FIELDS) == orm_view(orm.session, FIELDS)  # JSON, inet, datetimes converted alike
    assert token.session is found["s"]
    assert query.first([-1]) is None


def test_the_refresh_token_lookup_needs_no_further_query(tokens: Any, mobile_client: Any) -> None:
    with CaptureQueriesContext(connection) as captured:
        token = find_refresh_token(tokens["refresh_token"], client=mobile_client.client)
        assert token is not None
        assert token.session.user.is_active and token.session.client == mobile_client.client
        assert token.session.device is None  # a LEFT JOIN without a row: known, not queried
    assert len(captured.captured_queries) == 1


def test_a_part_read_in_part_defers_the_other_fields(tokens: Any, mobile_client: Any) -> None:
    """``Part.only``: the primary key and the named fields, the rest read when asked (as ``only()``)."""
    query = JoinedQuery(lambda: [
        Part(DeviceSession, "s"),
        Part(Client, "c", on="c.id = s.client_id", parent="s", attr="client", only=("client_id", "is_active")),
    ], where="s.id = %s")
    held, session = mobile_client.client, DeviceSession.objects.get()
    with CaptureQueriesContext(connection) as captured:
        found = query.first([session.pk])
        assert found is not None
        client = found["c"]
        assert isinstance(client, Client) and found["s"].client is client  # type: ignore[union-attr]
        assert (client.pk, client.client_id, client.is_active) == (held.pk, held.client_id, True)
    assert len(captured.captured_queries) == 1
    assert "name" in client.get_deferred_fields() and "client_id" not in client.get_deferred_fields()
    assert client.name == held.name  # read when asked


def test_the_refresh_token_lookup_keeps_the_row_of_a_client_deactivated_since(tokens: Any, mobile_client: Any) -> None:
    """The authenticated client may be a copy from before a write behind the signal (raw SQL):
    the row read with the token says the family's client is inactive, and stays."""
    held = mobile_client.client
    elsewhere(Client).filter(pk=held.pk).update(is_active=False)
    with CaptureQueriesContext(connection) as captured:
        token = find_refresh_token(tokens["refresh_token"], client=held)
        assert token is not None and token.session.client is not held
        assert token.session.client.is_active is False and token.session.client.client_id == held.client_id
        assert token.is_revoked()
    assert len(captured.captured_queries) == 1


def test_insert_sets_keys_and_stores_what_save_would() -> None:
    now = timezone.now()
    events = [SecurityEvent(event_type="a", details={"n": 1, "s": "x"}, ip_address="192.0.2.1", created_at=now),
              SecurityEvent(event_type="b", details=[1, 2], client_id="c")]
    insert(events)
    assert events[0].pk and events[1].pk and events[0].pk != events[1].pk
    stored = {e.pk: e for e in SecurityEvent.objects.all()}
    assert stored[events[0].pk].details == {"n": 1, "s": "x"}
    assert stored[events[0].pk].ip_address == "192.0.2.1"
    assert stored[events[0].pk].created_at == now
    assert stored[events[1].pk].details == [1, 2] and stored[events[1].pk].created_at is not None  # the default ran
    assert not events[0]._state.adding


def test_a_statement_reports_the_rows_it_changed(tokens: Any) -> None:
    mark = Statement(RefreshToken, "UPDATE {table} SET rotated_at = %s WHERE id = %s AND rotated_at IS NULL "
                                   "AND expires_at > %s", ["rotated_at", "id", "expires_at"])
    token = RefreshToken.objects.get(rotated_at=None)
    now = timezone.now()
    assert mark.run(now, token.pk, now) == 1
    assert mark.run(now, token.pk, now) == 0  # already rotated: the condition is what makes it single use
    token.refresh_from_db()
    assert token.rotated_at == now
    expired = RefreshToken.objects.create(token_hash=b"h" * 32, session=token.session, scope="", created_at=now,
                                          expires_at=now - timedelta(seconds=1))
    assert mark.run(now, expired.pk, now) == 0


def test_no_writes_lets_reads_through_and_refuses_writes_and_locks_before_they_run() -> None:
    from django.contrib.auth import get_user_model

    from core.events import EventType, build
    from core.sql import QueryAttempted, no_writes

    User = get_user_model()
    user = User.objects.create(username="reader")
    with no_writes() as collected:
        assert User.objects.filter(pk=user.pk).exists()  # a plain read runs
        insert([build(EventType.OAUTH_TOKEN_REFRESHED, client_id="app")])  # collected, not written
    assert len(collected) == 1 and collected[0][0].pk is None
    assert not SecurityEvent.objects.exists()

    with pytest.raises(QueryAttempted), no_writes():
        User.objects.filter(pk=user.pk).update(username="written")
    with pytest.raises(QueryAttempted), no_writes():
        try:  # the block swallowing the refusal does not hide it
            User.objects.filter(pk=user.pk).update(username="written")
        except QueryAttempted:
            pass
    with pytest.raises(QueryAttempted), no_writes():
        list(User.objects.select_for_update().filter(pk=user.pk))  # outside a transaction: Django refuses
    with CaptureQueriesContext(connection), pytest.raises(QueryAttempted), no_writes():
        User.objects.raw(f"SELECT * FROM {User._meta.db_table} FOR UPDATE")[0]  # a locking read
    assert User.objects.get(pk=user.pk).username == "reader"
    assert not connection.needs_rollback  # the test's own transaction is intact


def test_a_save_refused_inside_no_writes_leaves_the_instance_as_the_database_holds_it() -> None:
    """The caller's second attempt (in a transaction) reuses the instances of the first: a refused
    ``save()`` must not leave its unsaved values behind, or the second attempt sees nothing to
    change and writes nothing (the device-health date that once took every later refresh of a
    device off the one statement)."""
    from django.contrib.auth import get_user_model

    from core.sql import QueryAttempted, _restore, no_writes

    User = get_user_model()
    user = User.objects.create(username="kept", first_name="Ada", last_name="Lovelace", email="a@example.com")
    with CaptureQueriesContext(connection) as captured, pytest.raises(QueryAttempted), no_writes():
        user.first_name, user.email = "Grace", "g@example.com"
        user.save(update_fields=["first_name"])  # refused before it ran
    assert (user.first_name, user.email) == ("Ada", "g@example.com")  # only what it meant to write
    # the refused UPDATE (logged, not run), then the one read back
    assert [q["sql"].split()[0] for q in captured.captured_queries] == ["UPDATE", "SELECT"]
    assert User.objects.get(pk=user.pk).first_name == "Ada"

    with pytest.raises(QueryAttempted), no_writes():
        user.first_name = user.last_name = "Hopper"
        user.save()  # every field
    assert (user.first_name, user.last_name, user.email) == ("Ada", "Lovelace", "a@example.com")
    stored = User.objects.get(pk=user.pk)
    assert (stored.first_name, stored.last_name, stored.email) == ("Ada", "Lovelace", "a@example.com")

    fresh = User(username="never")  # a new instance: nothing stored to read back
    with pytest.raises(QueryAttempted), no_writes():
        fresh.save()
    assert fresh.pk is None and not User.objects.filter(username="never").exists()

    # deleted by another request meanwhile: nothing to read back, the refusal stands (no error)
    User.objects.filter(pk=user.pk).delete()
    user.first_name = "Gone"
    _restore([(user, ["first_name"])])
    assert user.first_name == "Gone"


def test_a_save_outside_no_writes_is_not_read_back() -> None:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    user = User.objects.create(username="plain")
    with CaptureQueriesContext(connection) as captured:
        user.first_name = "Ada"
        user.save(update_fields=["first_name"])
    assert [q["sql"].split()[0] for q in captured.captured_queries] == ["UPDATE"]
    assert User.objects.get(pk=user.pk).first_name == "Ada"


def test_a_nested_block_hands_its_refused_saves_to_the_enclosing_one() -> None:
    """Django asks the enclosing block's check first, so the refusal is the enclosing block's:
    it reads back what the inner one saw saved."""
    from django.contrib.auth import get_user_model

    from core.sql import QueryAttempted, no_writes

    User = get_user_model()
    user = User.objects.create(username="nested", first_name="Ada")
    with pytest.raises(QueryAttempted), no_writes(), no_writes():
        user.first_name = "Grace"
        user.save(update_fields=["first_name"])
    assert user.first_name == "Ada" and User.objects.get(pk=user.pk).first_name == "Ada"


def test_a_read_back_the_database_refuses_leaves_the_refusal_standing() -> None:
    """The database gone between the refusal and the read-back: still ``QueryAttempted`` (the
    caller forgets the attempt and takes its transactional path, which meets the outage), not
    the read's ``DatabaseError`` past the caller's ``except QueryAttempted``."""
    from django.contrib.auth import get_user_model
    from django.db import OperationalError

    from core.sql import QueryAttempted, no_writes

    User = get_user_model()
    user = User.objects.create(username="outage", first_name="Ada")
    reads = {"allowed": True}

    def gone(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if not reads["allowed"] and sql.lstrip().upper().startswith("SELECT"):
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(gone), pytest.raises(QueryAttempted), no_writes():
        user.first_name = "Grace"
        reads["allowed"] = False
        user.save(update_fields=["first_name"])
    assert User.objects.get(pk=user.pk).first_name == "Ada"  # nothing was written
