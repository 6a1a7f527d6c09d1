"""Seed Vigil's bench database: clients through ``register_client``, signing keys, then
users, live device sessions with refresh tokens and unused authorization codes in bulk SQL
(``bench.bulk.insert_series``: one ``INSERT ... SELECT generate_series`` per table).

Run from the repository root with Vigil's virtualenv and ``DJANGO_SETTINGS_MODULE=
bench.bench_settings``. Prints one JSON line (client ids, the introspecting service's
secret) for the load generator. ``--extend N`` adds sessions N+1.. for the scale run.
``--attested K`` / ``--attested-android K`` add enrolled iOS / Android devices with
device-bound sessions; their private keys go to ``--attested-out`` for the load generator.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import django

django.setup()

from django.db import connection, transaction  # noqa: E402

from accounts.models import User  # noqa: E402
from bench.bulk import insert_series  # noqa: E402
from bench.seed_sql import REDIRECT_URI, SQL_CODE, SQL_REFRESH, SQL_VERIFIER, sql_s256, sql_sha256  # noqa: E402
from clients.flows.registration import register_client  # noqa: E402
from clients.models import Client  # noqa: E402
from core import keys  # noqa: E402
from sessions.models import (  # noqa: E402
    AuthorizationCode,  # noqa: E402
    DeviceSession,
    RefreshToken,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from joserfc.jwk import ECKey

    from attestation.models import Device

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
# Session i holds refresh token bench-i (stored as its SHA-256 bytes, like core.crypto.token_digest).
REFRESH_COLUMNS = {
    "id": "g", "token_hash": sql_sha256(SQL_REFRESH), "session_id": "g", "scope": "%(scope)s",
    "created_at": "now()", "expires_at": "now() + interval '30 days'",
}
CODE_COLUMNS = {
    "code_hash": sql_sha256(SQL_CODE), "client_id": "%(client)s", "user_id": "1 + (g %% %(users)s)",
    "redirect_uri": "%(redirect_uri)s", "scope": "%(scope)s", "code_challenge": sql_s256(SQL_VERIFIER),
    "code_challenge_method": "'S256'", "auth_time": "now()", "amr": AMR,
    "created_at": "now()", "expires_at": "now() + interval '3 hours'",
}


def seed(sessions: int, codes: int, attested: int = 0, attested_out: str = "", android: int = 0,
         integrity_max_age: int = 0) -> dict[str, object]:
    users = max(1, min(sessions, 100_000))
    keys.ensure_keys()
    mobile = register_client(
        name="Bench mobile app",
        public=True,
        redirect_uris=[REDIRECT_URI],
        scopes=["openid", "profile", "email", "offline_access"],
        first_party=True,
        client_id="bench-mobile",
        # Pinned: the runs before RS256 became the default signed ES256; what RS256 would add
        # is measured on its own (bench/signing_alg.py, docs/benchmarks.md).
        signing_alg="ES256",
    ).client
    service = register_client(
        name="Bench resource server",
        public=False,
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=["profile"],
        client_id="bench-rs",
        served_resources=["bench-mobile"],  # introspects the app's tokens (RFC 7662 section 4)
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
    device_keys: list[dict[str, object]] = []
    # Each platform on its own: the plain scenarios, and the other platform, still run; the
    # report says why one did not.
    if attested:
        try:
            info, found = seed_attested(attested, users)
            attested_info.update(info)
            device_keys += found
        except Exception as exc:  # noqa: BLE001
            attested_info["attested_error"] = f"{type(exc).__name__}: {exc}"[:300]
    if android:
        try:
            info, found = seed_attested_android(android, users, first=attested + 1, max_age_minutes=integrity_max_age)
            attested_info.update(info)
            device_keys += found
        except Exception as exc:  # noqa: BLE001
            attested_info["attested_android_error"] = f"{type(exc).__name__}: {exc}"[:300]
    if attested_out and (attested or android):
        with open(attested_out, "w") as fh:
            json.dump(device_keys, fh)
        os.chmod(attested_out, 0o600)
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


def seed_attested(count: int, users: int) -> tuple[dict[str, object], list[dict[str, object]]]:
    """``count`` iOS devices (App Attest keys of the simulator) already enrolled, each with a
    session bound to it and to a DPoP key: refresh token ``bench-att-{j}``, j = 1..count.

    Enrollment itself is not measured, so the device rows are written as enrollment would
    leave them (public key, key id, counter 0); the refresh path then verifies real
    assertions against them. Returns the private keys for the load generator (written to a
    temporary file, never into results).
    """
    from django.utils import timezone

    from attestation.models import Device, Platform, RegisteredApp, SecurityLevel
    from simulator.ios import IOSDevice

    mobile = Client.objects.get(client_id="bench-mobile")
    app = RegisteredApp.objects.create(
        client=mobile, platform=Platform.IOS, ios_team_id=APP_TEAM, ios_bundle_id=APP_BUNDLE,
        ios_environment="production", require_attestation=False,
    )
    now = timezone.now()
    sims = [IOSDevice(app_id=app.app_id) for _ in range(count)]
    with transaction.atomic():
        devices = Device.objects.bulk_create([
            Device(platform=Platform.IOS, app=app, key_id=sim.key_id_b64, public_key=sim.public_key_pem,
                   security_level=SecurityLevel.SECURE_ENCLAVE, first_attested_at=now, last_attested_at=now)
            for sim in sims
        ])
        dpops = _bind_sessions(mobile, devices, first=1, users=users, now=now)
    keys_out = [
        {"j": j, "platform": "ios", "app_id": app.app_id, "key_pem": _private_pem(sim.key),
         "dpop_jwk": dpop.as_dict(private=True)}
        for j, (sim, dpop) in enumerate(zip(sims, dpops, strict=True), start=1)
    ]
    return {"attested_sessions": count, "attested_app_id": app.app_id}, keys_out


def seed_attested_android(count: int, users: int, *, first: int,
                          max_age_minutes: int = 0) -> tuple[dict[str, object], list[dict[str, object]]]:
    """``count`` Android devices (attested Keystore keys of the simulator) already enrolled,
    each with a session bound to it and to a DPoP key: refresh token ``bench-att-{j}``,
    j = first..first+count-1 (after the iOS ones).

    The bench client's Android app is registered as an operator would (``register_android_app``:
    package, signing-certificate digest, the Play Console keys that decrypt and verify
    *classic* Play Integrity tokens, minimum integrity ``device``, the given verdict max age:
    0, Vigil's default, asks for a verdict on every refresh). Each device's row holds what
    enrollment stores, computed by Vigil's own verifiers from the simulator's evidence: the
    facts of its Key Attestation chain (checked against the simulator's test root, passed to
    the verifier here only: the server runs without ``ATTESTATION_ALLOW_TEST_ROOTS``) and of a
    classic verdict. With a max age N > 0 the verdicts are dated evenly over the last N
    minutes, as in a fleet that has been refreshing for a while.
    """
    import base64

    from django.utils import timezone

    from attestation.android.key_attestation import verify_key_attestation
    from attestation.binding import RequestBinding, grant_hash
    from attestation.flows.android_devices import LEVELS, check_integrity, key_policy
    from attestation.flows.register_apps import register_android_app
    from attestation.models import Device, Platform
    from attestation.testing import google_pki
    from simulator.android import AndroidDevice

    mobile = Client.objects.get(client_id="bench-mobile")
    decryption_key, verification_key = google_pki.play_keys_b64()
    app = register_android_app(
        mobile, APP_BUNDLE, [base64.b64encode(google_pki.TEST_SIGNING_DIGEST).decode()],
        require_attestation=False, decryption_key_b64=decryption_key, verification_key_b64=verification_key,
        max_age_minutes=max_age_minutes,
    )
    now = timezone.now()
    sims = [AndroidDevice(package_name=APP_BUNDLE) for _ in range(count)]
    rows: list[Device] = []
    verdict_times: list[datetime] = []
    for n, sim in enumerate(sims):
        binding = RequestBinding(f"bench-enroll-{first + n}", mobile.client_id, "authorization_code",
                                 grant_hash(f"bench-enroll-code-{first + n}"))
        chain = verify_key_attestation(sim.attest(binding.client_data_hash()), challenge=binding.client_data_hash(),
                                       now=now, policy=key_policy(app), roots=google_pki.test_trusted_roots(),
                                       revoked={})
        verdict = check_integrity(app, sim.classic_token(binding, now=now), "classic", binding, now)
        issued = now - timedelta(minutes=max_age_minutes) * n / count
        integrity = {**verdict.facts, "timestamp": issued.isoformat(), "token_type": "classic",
                     "checked_at": issued.isoformat()}
        verdict_times.append(issued)
        rows.append(Device(platform=Platform.ANDROID, app=app, key_id=chain.key_id, public_key=chain.public_key_pem,
                           security_level=LEVELS[chain.security_level], first_attested_at=now, last_attested_at=now,
                           verdict={"key_attestation": chain.facts(), "play_integrity": integrity}))
    with transaction.atomic():
        devices = Device.objects.bulk_create(rows)
        dpops = _bind_sessions(mobile, devices, first=first, users=users, now=now)
    keys_out = [
        {"j": j, "platform": "android", "package": APP_BUNDLE, "key_pem": _private_pem(sim.key),
         "dpop_jwk": dpop.as_dict(private=True), "integrity_max_age_minutes": max_age_minutes,
         "verdict_at": issued.timestamp()}
        for j, (sim, dpop, issued) in enumerate(zip(sims, dpops, verdict_times, strict=True), start=first)
    ]
    return {"attested_android_sessions": count, "attested_android_package": APP_BUNDLE,
            "play_integrity_max_age_minutes": max_age_minutes}, keys_out


def _bind_sessions(mobile: Client, devices: list[Device], *, first: int, users: int, now: datetime) -> list[ECKey]:
    """One live session per device (ids ``ATTESTED_BASE_ID + j``), bound to it and to a fresh
    DPoP key, with refresh token ``bench-att-{j}``; returns the DPoP keys."""
    from joserfc.jwk import ECKey

    from core.crypto import token_digest
    from sessions.dpop import thumbprint

    dpops = [ECKey.generate_key("P-256", private=True) for _ in devices]
    sessions = DeviceSession.objects.bulk_create([
        DeviceSession(id=ATTESTED_BASE_ID + j, sid=f"bench-att-sid-{j}", user_id=1 + j % users, client=mobile,
                      scope=SCOPE, auth_time=now, amr=["pwd"], device=device,
                      dpop_jkt=thumbprint(dpop.as_dict(private=False)), created_at=now, last_refresh_at=now)
        for j, (device, dpop) in enumerate(zip(devices, dpops, strict=True), start=first)
    ])
    RefreshToken.objects.bulk_create([
        RefreshToken(id=ATTESTED_BASE_ID + j, token_hash=token_digest(f"bench-att-{j}"), session=session,
                     scope=SCOPE, created_at=now, expires_at=now + timedelta(days=30))
        for j, session in enumerate(sessions, start=first)
    ])
    return dpops


def _private_pem(key: EllipticCurvePrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


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
    """VACUUM as well as ANALYZE: otherwise autovacuum wakes up for the freshly inserted rows in
    the middle of the measurement (a million rows take it a while) and its CPU lands on the
    windows; a database that has grown to that size in service is long vacuumed."""
    with connection.cursor() as cur:
        for model in (User, DeviceSession, RefreshToken, AuthorizationCode):
            cur.execute(f"VACUUM (ANALYZE) {model._meta.db_table}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--codes", type=int, default=0)
    parser.add_argument("--extend", type=int, default=None, help="sessions already seeded; add up to --sessions")
    parser.add_argument("--attested", type=int, default=0, help="iOS devices with attested, DPoP-bound sessions")
    parser.add_argument("--attested-android", type=int, default=0,
                        help="Android devices with attested, DPoP-bound sessions (after the iOS ones)")
    parser.add_argument("--play-integrity-max-age", type=int, default=0,
                        help="the Android app's play_integrity_max_age_minutes (0, Vigil's default: every refresh)")
    parser.add_argument("--attested-out", default="", help="where the devices' private keys go (for loadgen)")
    args = parser.parse_args()
    if args.extend is not None:
        result = extend(args.extend, args.sessions)
    else:
        result = seed(args.sessions, args.codes, args.attested, args.attested_out, args.attested_android,
                      args.play_integrity_max_age)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
