"""Issue 19: a refresh's updates stay on their page (HOT, PostgreSQL's heap-only tuples) and
write no index entry: the family's ``last_refresh_at``/``last_ip``/``last_place``, the presented
token's ``rotated_at`` and the device's counter or verdict touch no indexed column, and the
three tables keep room on each page (``fillfactor = 90``, ``core.schema``; sessions 0010,
attestation 0010). An index added on one of those columns, or a refresh that starts updating an
indexed one, fails here before it costs every refresh an index write per index."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from attestation.models import Device
from core.schema import HOT_TABLE_STORAGE
from sessions.models import DeviceSession, RefreshToken

from .test_device_bound_tokens import App, android_app, ios_app, iphone, pixel  # noqa: F401 - fixtures

pytestmark = [pytest.mark.postgres, pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]

TABLES = [DeviceSession._meta.db_table, RefreshToken._meta.db_table, Device._meta.db_table]


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("service-missing: HOT updates are PostgreSQL's (DATABASE_URL=postgres://...)")


def _updates() -> dict[str, tuple[int, int]]:
    """(updated, of which HOT) per table, in this test's transaction so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = ANY(%s)",
                       [TABLES])
        found = {name: (updated, hot) for name, updated, hot in cursor.fetchall()}
    return {table: found.get(table, (0, 0)) for table in TABLES}


def _refreshed(app: App) -> dict[str, tuple[int, int]]:
    app.login()
    assert app.refresh().status_code == 200
    before = _updates()
    for _ in range(3):
        response = app.refresh()
        assert response.status_code == 200, response.content
    after = _updates()
    return {table: (after[table][0] - before[table][0], after[table][1] - before[table][1]) for table in TABLES}


@pytest.mark.parametrize("device", ["iphone", "pixel"])
def test_every_update_of_an_attested_refresh_is_hot(device: str, request: Any) -> None:
    changed = _refreshed(request.getfixturevalue(device))
    for table, (updated, hot) in changed.items():
        assert updated >= 3, (table, changed)  # each of the three refreshes updated a row of each table
        assert hot == updated, f"{table}: {updated - hot} of {updated} updates wrote index entries"


def test_the_tables_every_refresh_updates_keep_room_on_each_page() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s)", [TABLES])
        options = dict(cursor.fetchall())
    expected = sorted(f"{name}={value:g}" for name, value in HOT_TABLE_STORAGE.items())
    assert {table: sorted(options[table] or []) for table in TABLES} == dict.fromkeys(TABLES, expected)
