"""Races on PostgreSQL: a code redeemed concurrently issues tokens once; a refresh token
presented concurrently rotates once (without a grace window the losers are reuse; with one
see test_refresh_retry_postgres.py)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client as HttpClient

from sessions.models import DeviceSession, RefreshToken
from tests.concurrency import run_concurrently

from .conftest import exchange, get_code
from .test_token import refresh

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_code_redemption_issues_tokens_once(browser, mobile_client, pkce, settings):
    """Without a retry window (``IDP_REFRESH_TOKEN_GRACE_SECONDS = 0``) every second exchange is
    reuse; with one, the racers share the family (test_code_exchange_retry.py)."""
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 0
    assert connection.vendor == "postgresql"
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    responses = run_concurrently(20, lambda _: exchange(HttpClient(), code, pkce, mobile_client.client.client_id))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) <= 1
    assert all(r.json().get("error") == "invalid_grant" for r in responses if r.status_code != 200)
    # Whoever won, a code used twice revokes what it issued.
    assert DeviceSession.objects.filter(status="active").count() == 0


def test_concurrent_refresh_rotates_once(tokens, mobile_client, settings):
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 0
    assert connection.vendor == "postgresql"
    rt = tokens["refresh_token"]
    responses = run_concurrently(24, lambda _: refresh(rt, mobile_client.client.client_id))
    assert sum(r.status_code == 200 for r in responses) <= 1
    assert RefreshToken.objects.filter(rotated_at__isnull=False).count() <= 1
    # Concurrent presentation of one token is reuse: the family is revoked.
    assert DeviceSession.objects.get().status == "revoked"
