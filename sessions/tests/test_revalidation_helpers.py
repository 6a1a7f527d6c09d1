"""Seeding helpers shared by the revalidation tests (``sessions/tests/test_revalidation*.py``
and ``tests/test_celery_beat_worker.py``). No tests here: plain functions, so the Celery
tests can seed rows the worker subprocess will see.

``seed_bulk`` writes many rows with ``INSERT ... SELECT generate_series`` (PostgreSQL only):
one statement per table, whatever the count.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection

from attestation.models import Device, DeviceStatus, Platform, RegisteredApp, SecurityLevel
from clients.flows.registration import register_client
from clients.models import Client
from sessions.models import AccessToken, DeviceSession, RefreshToken, SessionStatus

PEM = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"


def make_client(client_id: str = "reval-mobile") -> Client:
    return register_client(
        name=client_id, public=True, redirect_uris=["com.example.app:/oauth2redirect"], client_id=client_id
    ).client


def make_user(username: str = "reval-user") -> Any:
    return get_user_model().objects.create(username=username, email=f"{username}@example.com")


def make_app(client: Client, platform: str = Platform.ANDROID) -> RegisteredApp:
    if platform == Platform.IOS:
        return RegisteredApp.objects.create(
            client=client, platform=platform, ios_team_id="ABCDE12345", ios_bundle_id="com.example.app"
        )
    return RegisteredApp.objects.create(client=client, platform=platform, android_package_name="com.example.app")


def make_device(
    app: RegisteredApp,
    *,
    attested_at: datetime,
    asserted_at: datetime | None = None,
    serials: list[str] | None = None,
    flagged: bool = False,
    status: str = DeviceStatus.ACTIVE,
) -> Device:
    verdict = {"key_attestation": {"chain_serials": serials}} if serials is not None else {}
    return Device.objects.create(
        platform=app.platform, app=app, key_id=secrets.token_hex(16), public_key=PEM,
        security_level=SecurityLevel.TEE, verdict=verdict, first_attested_at=attested_at,
        last_attested_at=attested_at, last_asserted_at=asserted_at, requires_reattestation=flagged, status=status,
        reattestation_required_at=attested_at if flagged else None,
    )


def make_session(user: Any, client: Client, device: Device | None, now: datetime) -> DeviceSession:
    """An active family with one live refresh token and one live access token."""
    session = DeviceSession.objects.create(
        sid=secrets.token_hex(16), user=user, client=client, auth_time=now, amr=["pwd"], device=device,
        created_at=now, last_refresh_at=now,
    )
    RefreshToken.objects.create(
        token_hash=secrets.token_bytes(32), session=session, created_at=now, expires_at=now + timedelta(days=30)
    )
    AccessToken.objects.create(
        jti=secrets.token_hex(16), session=session, client=client, user=user, created_at=now,
        expires_at=now + timedelta(minutes=5),
    )
    return session


def seed_bulk(
    app: RegisteredApp, user: Any, *, count: int, attested_at: datetime, flagged: bool = False,
    asserted_at: datetime | None = None, tag: str = "bulk",
) -> None:
    """``count`` devices of ``app``, each with one active session and one refresh token
    (PostgreSQL, ``generate_series``). ``tag`` keeps key ids and sids unique across calls."""
    table = {m: m._meta.db_table for m in (Device, DeviceSession, RefreshToken)}
    with connection.cursor() as cur:
        cur.execute(
            f"""INSERT INTO {table[Device]} (platform, app_id, key_id, public_key, counter, security_level,
                verdict, receipt, first_attested_at, last_attested_at, last_asserted_at, status, status_reason,
                requires_reattestation, reattestation_required_at)
            SELECT %s, %s, %s || '-' || g, %s, 0, %s, '{{}}'::jsonb, ''::bytea, %s, %s, %s, %s, '', %s, %s
            FROM generate_series(1, %s) AS g""",
            [app.platform, app.pk, tag, PEM, SecurityLevel.TEE, attested_at, attested_at, asserted_at,
             DeviceStatus.ACTIVE, flagged, attested_at if flagged else None, count],
        )
        cur.execute(
            f"""INSERT INTO {table[DeviceSession]} (sid, user_id, client_id, browser_sid, scope, resource,
                auth_time, amr, acr, nonce, device_id, dpop_jkt, status, status_reason, created_at, last_refresh_at,
                last_place)
            SELECT 'sid-' || d.key_id, %s, %s, '', 'openid', '[]'::jsonb, %s, '["pwd"]'::jsonb, '', '', d.id,
                   '', %s, '', %s, %s, ''
            FROM {table[Device]} d WHERE d.app_id = %s AND d.key_id LIKE %s""",
            [user.pk, app.client_id, attested_at, SessionStatus.ACTIVE, attested_at, attested_at, app.pk, f"{tag}-%"],
        )
        cur.execute(
            f"""INSERT INTO {table[RefreshToken]} (token_hash, session_id, scope, created_at, expires_at)
            SELECT sha256(convert_to(s.sid, 'UTF8')), s.id, 'openid', %s, %s
            FROM {table[DeviceSession]} s WHERE s.sid LIKE %s""",
            [attested_at, attested_at + timedelta(days=30), f"sid-{tag}-%"],
        )
