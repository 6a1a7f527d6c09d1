"""The token endpoint's statements are prepared on PostgreSQL (issue 19): Django turns psycopg's
automatic preparation off unless ``prepare_threshold`` is set, and without it PostgreSQL parsed
and planned the refresh's look-up (a six-table join) on every request, about half of its CPU
per refresh. ``DATABASE_PREPARE_THRESHOLD`` (default 2) sets it; 0 turns it off, for a
transaction-mode pooler that cannot hold prepared statements."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.urls import reverse

from core import keys

from .conftest import form_post

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        return [row[0] for row in cursor.fetchall()]


def test_refresh_statements_are_prepared_from_the_third_run(tokens, mobile_client):
    if connection.vendor != "postgresql":
        pytest.skip("service-missing: prepared statements are PostgreSQL's (DATABASE_URL=postgres://...)")
    keys.ensure_keys()
    connection.ensure_connection()
    lookup = 'FROM "sessions_refresh_token" t JOIN "sessions_device_session" s'
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": mobile_client.client.client_id}
    got = form_post(HttpClient(), reverse("token"), data)
    assert got.status_code == 200
    assert not any(lookup in sql for sql in _prepared()), "prepared on the first run already"
    for _ in range(2):  # psycopg prepares once a statement has run prepare_threshold times
        data["refresh_token"] = got.json()["refresh_token"]
        got = form_post(HttpClient(), reverse("token"), data)
        assert got.status_code == 200
    prepared = _prepared()
    assert any(lookup in sql for sql in prepared), [s[:300] for s in prepared if "refresh_token" in s]
    assert any(sql.startswith('WITH l AS (SELECT id FROM "sessions_device_session"') for sql in prepared), prepared


@pytest.mark.parametrize(("value", "expected"), [(None, "2"), ("5", "5"), ("0", "None")])
def test_prepare_threshold_setting(value, expected):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_PREPARE_THRESHOLD"}
    env["DATABASE_URL"] = "postgres://nobody@127.0.0.1:1/none"  # parsed only, never connected
    if value is not None:
        env["DATABASE_PREPARE_THRESHOLD"] = value
    code = "from vigil import settings; print(settings.DATABASES['default']['OPTIONS']['prepare_threshold'])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == expected
