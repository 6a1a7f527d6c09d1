"""PostgreSQL aborting a refresh for a conflict (serialization failure 40001, deadlock 40P01)
answers like an outage: JSON 503 ``temporarily_unavailable`` with ``Retry-After``, nothing
written, and the same request retried succeeds (docs/operations.md "Outages")."""

from __future__ import annotations

from typing import Any

import psycopg.errors
import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from core.outage_testing import database_down
from sessions.models import RefreshToken

from .conftest import exchange, form_post, get_code

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CONFLICTS = {
    "deadlock": lambda: psycopg.errors.DeadlockDetected("deadlock detected"),
    "serialization": lambda: psycopg.errors.SerializationFailure("could not serialize access"),
}


def _is_rotation(sql: str) -> bool:
    """The rotation's UPDATE, or on PostgreSQL the one statement holding it (issue 19)."""
    return sql.lstrip().upper().startswith(("UPDATE", "WITH")) and f'UPDATE "{RefreshToken._meta.db_table}"' in sql


@pytest.mark.parametrize("conflict", CONFLICTS)
def test_a_refresh_aborted_by_a_conflict_answers_503_and_retries_cleanly(
    conflict: str, browser: HttpClient, mobile_client: Any, pkce: Any
) -> None:
    client_id = mobile_client.client.client_id
    code, _ = get_code(browser, client_id, pkce)
    token = exchange(HttpClient(), code, pkce, client_id).json()["refresh_token"]
    before = list(RefreshToken.objects.order_by("pk").values_list("pk", "rotated_at", "revoked_at"))
    data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    http = HttpClient(raise_request_exception=False)

    with database_down(matching=_is_rotation, error=CONFLICTS[conflict]) as refused:
        response = form_post(http, reverse("token"), data)

    assert refused, "the rotation UPDATE was not reached"
    assert response.status_code == 503 and response.json()["error"] == "temporarily_unavailable"
    assert int(response["Retry-After"]) >= 1
    assert list(RefreshToken.objects.order_by("pk").values_list("pk", "rotated_at", "revoked_at")) == before
    retried = form_post(http, reverse("token"), data)
    assert retried.status_code == 200, retried.content
    assert retried.json()["refresh_token"] != token
