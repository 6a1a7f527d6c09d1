"""The indexes every token response pays for on insert (issue 19; core 0003, sessions 0008 and
0010, attestation 0010): the security events, access tokens, families, refresh tokens and devices
keep the indexes their queries use and nothing else."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Model

from attestation.models import Device
from core.models import SecurityEvent
from sessions.models import AccessToken, DeviceSession, RefreshToken

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _indexes(model: type[Model]) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
                       " AND tablename = %s", [model._meta.db_table])
        return dict(cursor.fetchall())


def _columns(indexes: dict[str, str]) -> set[str]:
    return {definition.rsplit("(", 1)[1].rstrip(")") for definition in indexes.values()}


@pytest.fixture(autouse=True)
def _postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("service-missing: index definitions are checked on PostgreSQL (DATABASE_URL=postgres://...)")


def test_security_events_keep_only_the_indexes_queries_use():
    indexes = _indexes(SecurityEvent)
    assert not [d for d in indexes.values() if "pattern_ops" in d], indexes
    assert _columns(indexes) == {"id", "created_at", "event_type", "reason", "client_id", "user_id", "session_id, id"}


def test_access_tokens_have_no_pattern_twin_and_keep_the_unique_jti():
    indexes = _indexes(AccessToken)
    assert not [d for d in indexes.values() if "pattern_ops" in d], indexes
    assert any(d.startswith("CREATE UNIQUE INDEX") and d.endswith("(jti)") for d in indexes.values()), indexes


def test_families_keep_only_the_indexes_queries_use() -> None:
    """No index on ``user_id`` alone ((user_id, status) serves it) and no pattern twins."""
    indexes = _indexes(DeviceSession)
    assert not [d for d in indexes.values() if "pattern_ops" in d], indexes
    assert _columns(indexes) == {"id", "sid", "authorization_code_id", "user_id, status", "browser_sid", "status",
                                 "client_id", "device_id"}


def test_refresh_tokens_keep_only_the_indexes_queries_use() -> None:
    assert _columns(_indexes(RefreshToken)) == {"id", "session_id", "token_hash"}


def test_devices_keep_only_the_indexes_queries_use() -> None:
    """No index on ``app_id`` alone (the unique (app_id, key_id) serves it) and no pattern twin."""
    indexes = _indexes(Device)
    assert not [d for d in indexes.values() if "pattern_ops" in d], indexes
    assert _columns(indexes) == {"id", "app_id, key_id", "status", "attested"}
