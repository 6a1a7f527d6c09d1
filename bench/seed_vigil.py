"""Seed Vigil's bench database: clients through ``register_client``, signing keys, then
users, live device sessions with refresh tokens and unused authorization codes in bulk SQL
(``bench.bulk.insert_series``: one ``INSERT ... SELECT generate_series`` per table).

Run from the repository root with Vigil's virtualenv and ``DJANGO_SETTINGS_MODULE=
bench.bench_settings``. Prints one JSON line (client ids, the introspecting service's
secret) for the load generator. ``--extend N`` adds sessions N+1.. for the scale run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import timedelta

import django

django.setup()

from django.db import connection, transaction  # noqa: E402

from accounts.models import User  # noqa: E402
from bench.bulk import insert_series  # noqa: E402
from bench.seed_sql import REDIRECT_URI, SQL_CODE, SQL_REFRESH, SQL_VERIFIER, sql_s256, sql_sha256_hex  # noqa: E402
from idp import keys  # noqa: E402
from idp.flows.clients import register_client  # noqa: E402
from idp.models import AuthorizationCode, Client  # noqa: E402
from sessions.models import DeviceSession, RefreshToken  # noqa: E402

SCOPE = "profile offline_access"
AMR = "'[\"pwd\"]'::jsonb"

# Users get a fixed unusable password: logins are measured separately (bench/logins.py).
USER_COLUMNS = {
    "id": "g", "password": "'!bench'", "username": "'bench-user-' || g",
    "email": "'bench-user-' || g || '@example.test'", "is_active": "true", "is_staff": "false",
    "is_superuser": "false", "date_joined": "now()", "subject": "gen_random_uuid()",
    "email_verified": "true", "webauthn_user_handle": "NULL",
}
SESSION_COLUMNS = {
    "id": "g", "sid": "'bench-sid-' || g", "user_id": "1 + (g %% %(users)s)", "client_id": "%(client)s",
    "scope": "%(scope)s", "auth_time": "now()", "amr": AMR, "status": "'active'",
    "created_at": "now()", "last_refresh_at": "now()",
}
# Session i holds refresh token bench-i (stored as its SHA-256, like idp.crypto.token_hash).
REFRESH_COLUMNS = {
    "id": "g", "token_hash": sql_sha256_hex(SQL_REFRESH), "session_id": "g", "scope": "%(scope)s",
    "created_at": "now()", "expires_at": "now() + interval '30 days'",
}
CODE_COLUMNS = {
    "code_hash": sql_sha256_hex(SQL_CODE), "client_id": "%(client)s", "user_id": "1 + (g %% %(users)s)",
    "redirect_uri": "%(redirect_uri)s", "scope": "%(scope)s", "code_challenge": sql_s256(SQL_VERIFIER),
    "code_challenge_method": "'S256'", "auth_time": "now()", "amr": AMR,
    "created_at": "now()", "expires_at": "now() + interval '3 hours'",
}


def seed(sessions: int, codes: int, attested: int = 0, attested_out: str = "") -> dict[str, object]:
    users = max(1, min(sessions, 100_000))
    keys.ensure_keys()
    mobile = register_client(
        name="Bench mobile app",
        public=True,
        redirect_uris=[REDIRECT_URI],
        scopes=["openid", "profile", "email", "offline_access"],
        first_party=True,
        client_id="bench-mobile",
    ).client
    service = register_client(
        name="Bench resource server",
        public=False,
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=["profile"],
        client_id="bench-rs",
    )
    params = {"users": users, "client": mobile.pk, "scope": SCOPE, "redirect_uri": REDIRECT_URI}
    timings: dict[str, float] = {}
    with transaction.atomic():
        start = time.monotonic()
        insert_series(User, users, USER_COLUMNS, params)
        timings["users"] = round(time.monotonic() - start, 2)
        start = time.monotonic()
        insert_series(DeviceSession, sessions, SESSION_COLUMNS, params)
        insert_series(RefreshToken, sessions, REFRESH_COLUMNS, params)
        timings["sessions"] = round(time.monotonic() - start, 2)
        start = time.monotonic()
        if codes:
            insert_series(AuthorizationCode, codes, CODE_COLUMNS, params)
        timings["codes"] = round(time.monotonic() - start, 2)
    attested_info: dict[str, object] = {}
    if attested:
        try:
            attested_info = seed_attested(attested, users, attested_out)
        except Exception as exc:  # noqa: BLE001 - the plain scenarios still run; the report says why
            attested_info = {"attested_error": f"{type(exc).__name__}: {exc}"[:300]}
    _reset_sequences()
    _analyze()
    return {
        **attested_info,
        "client_id": mobile.client_id,
        "service_id": service.client.client_id,
        "service_secret": service.secret,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "users": users,
        "sessions": sessions,
        "codes": codes,
        "seed_seconds": timings,
    }


ATTESTED_BASE_ID = 1_000_000_000  # attested sessions' ids, clear of the plain and scale ranges
APP_TEAM, APP_BUNDLE = "BENCH12345", "com.vigil.bench"


def seed_attested(count: int, users: int, out_path: str) -> dict[str, object]:
    """``count`` iOS devices (App Attest keys of the simulator) already enrolled, each with a
    session bound to it and to a DPoP key: refresh token ``bench-att-{j}``.

    Enrollment itself is not measured, so the device rows are written as enrollment would
    leave them (public key, key id, counter 0); the refresh path then verifies real
    assertions against them. The private keys go to ``out_path`` for the load generator
    (a temporary file, never into results).
    """
    from cryptography.hazmat.primitives import serialization
    from django.utils import timezone
    from joserfc.jwk import ECKey

    from attestation.models import Device, Platform, RegisteredApp, SecurityLevel
    from attestation.simulator.ios import IOSDevice
    from idp.crypto import token_hash
    from sessions.dpop import thumbprint

    mobile = Client.objects.get(client_id="bench-mobile")
    app = RegisteredApp.objects.create(
        client=mobile, platform=Platform.IOS, ios_team_id=APP_TEAM, ios_bundle_id=APP_BUNDLE,
        ios_environment="production", require_attestation=False,
    )
    now = timezone.now()
    sims = [IOSDevice(app_id=app.app_id) for _ in range(count)]
    dpops = [ECKey.generate_key("P-256", private=True) for _ in range(count)]
    with transaction.atomic():
        devices = Device.objects.bulk_create([
            Device(platform=Platform.IOS, app=app, key_id=sim.key_id_b64, public_key=sim.public_key_pem,
                   security_level=SecurityLevel.SECURE_ENCLAVE, first_attested_at=now, last_attested_at=now)
            for sim in sims
        ])
        sessions = DeviceSession.objects.bulk_create([
            DeviceSession(id=ATTESTED_BASE_ID + j, sid=f"bench-att-sid-{j}", user_id=1 + j % users, client=mobile,
                          scope=SCOPE, auth_time=now, amr=["pwd"], device=device,
                          dpop_jkt=thumbprint(dpop.as_dict(private=False)), created_at=now, last_refresh_at=now)
            for j, (device, dpop) in enumerate(zip(devices, dpops, strict=True), start=1)
        ])
        RefreshToken.objects.bulk_create([
            RefreshToken(id=ATTESTED_BASE_ID + j, token_hash=token_hash(f"bench-att-{j}"), session=session,
                         scope=SCOPE, created_at=now, expires_at=now + timedelta(days=30))
            for j, session in enumerate(sessions, start=1)
        ])
    keys_out = [
        {
            "j": j,
            "app_id": app.app_id,
            "key_pem": sim.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode(),
            "dpop_jwk": dpop.as_dict(private=True),
        }
        for j, (sim, dpop) in enumerate(zip(sims, dpops, strict=True), start=1)
    ]
    with open(out_path, "w") as fh:
        json.dump(keys_out, fh)
    os.chmod(out_path, 0o600)
    return {"attested_sessions": count, "attested_app_id": app.app_id}


def extend(existing: int, sessions: int) -> dict[str, object]:
    """Add sessions ``existing + 1 .. sessions`` (with their refresh tokens) for the scale run."""
    mobile = Client.objects.get(client_id="bench-mobile")
    users = User.objects.filter(username__startswith="bench-user-").count()
    params = {"users": users, "client": mobile.pk, "scope": SCOPE}
    start = time.monotonic()
    count = sessions - existing
    with transaction.atomic():
        insert_series(DeviceSession, count, SESSION_COLUMNS, params, start=existing + 1)
        insert_series(RefreshToken, count, REFRESH_COLUMNS, params, start=existing + 1)
        _reset_sequences()
    _analyze()
    return {"sessions": sessions, "seed_seconds": {"sessions": round(time.monotonic() - start, 2)}}


def _reset_sequences() -> None:
    """Sequences past the rows seeded with explicit ids (the attested ones sit far above)."""
    with connection.cursor() as cur:
        for model in (User, DeviceSession, RefreshToken):
            table = model._meta.db_table
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")


def _analyze() -> None:
    with connection.cursor() as cur:
        for model in (User, DeviceSession, RefreshToken, AuthorizationCode):
            cur.execute(f"ANALYZE {model._meta.db_table}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--codes", type=int, default=0)
    parser.add_argument("--extend", type=int, default=None, help="sessions already seeded; add up to --sessions")
    parser.add_argument("--attested", type=int, default=0, help="iOS devices with attested, DPoP-bound sessions")
    parser.add_argument("--attested-out", default="", help="where the devices' private keys go (for loadgen)")
    args = parser.parse_args()
    if args.extend is not None:
        result = extend(args.extend, args.sessions)
    else:
        result = seed(args.sessions, args.codes, args.attested, args.attested_out)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
