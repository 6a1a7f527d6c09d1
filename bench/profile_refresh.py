"""Profile Vigil's token endpoint in process (no gunicorn, no network): pyinstrument over
N refresh grants (or code exchanges) through Django's test client, on a throwaway
PostgreSQL database seeded like the bench. Also prints the SQL of one request.

    .venv/bin/pip install pyinstrument
    .venv/bin/python bench/profile_refresh.py [--requests 500] [--kind refresh|code_exchange|...]

``attested_refresh`` is an iOS device (App Attest assertion + DPoP), ``attested_refresh_android``
an Android one (key signature + classic Play Integrity token + DPoP; the bench app's default
policy asks for a verdict on every refresh).

Same environment as the bench (production settings), with a Redis database of its own (12).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from datetime import UTC
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
DB = os.environ.get("BENCH_PROFILE_DB", f"vigil_bench_profile_{os.getpid()}")  # own database: runs may overlap
KEYS = f"/tmp/vigil-bench-profile-keys-{os.getpid()}.json"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
KINDS = ["refresh", "attested_refresh", "attested_refresh_android", "code_exchange"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--kind", choices=KINDS, default="refresh")
    parser.add_argument("--html", default=None, help="also write pyinstrument's HTML report here")
    parser.add_argument("--all", action="store_true", help="show library frames too")
    args = parser.parse_args()
    run(args, profile)


def run(args: argparse.Namespace, body) -> None:
    """Create and seed the throwaway database, call ``body(args)`` in it, drop it."""
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "bench.bench_settings",
        "DATABASE_URL": f"{PG}/{DB}",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "IDP_KEY_ENCRYPTION_SECRET": secrets.token_urlsafe(32),
        "IDP_ISSUER": "https://localhost",
        "DJANGO_BEHIND_TLS_PROXY": "1",
        "REDIS_URL": "redis://127.0.0.1:6379/12",  # not the bench's 13 (bench/run.py flushes it)
    })
    for var in ("DJANGO_DEBUG", "VIGIL_TESTING"):
        os.environ.pop(var, None)
    sys.path.insert(0, str(ROOT))
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB}"')
    try:
        py = str(ROOT / ".venv" / "bin" / "python")
        subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
        n = max(args.requests * 2, 1000)
        subprocess.run([py, "-m", "bench.seed_vigil", "--sessions", str(n), "--codes", str(n), "--attested", "8",
                        "--attested-android", "8", "--attested-out", KEYS],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        body(args)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        if os.path.exists(KEYS):
            os.unlink(KEYS)


def attested_device(client: object, platform: str = "ios") -> object:
    """A callable doing one attested refresh of the platform's first attested session: App
    Attest assertion (iOS) or key signature + classic Play Integrity token (Android), + DPoP."""
    import json
    from datetime import datetime

    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from joserfc.jwk import ECKey

    from attestation.binding import RequestBinding, grant_hash
    from sessions.dpop import thumbprint
    from sessions.dpop.client import create_proof
    from simulator.android import AndroidDevice
    from simulator.ios import IOSDevice

    with open(KEYS) as fh:
        item = next(i for i in json.load(fh) if i.get("platform", "ios") == platform)
    key = load_pem_private_key(item["key_pem"].encode(), None)
    if platform == "android":
        sim = AndroidDevice(package_name=item["package"], key=key)
    else:
        sim = IOSDevice(app_id=item["app_id"], key=key)
    dpop = ECKey.import_key(item["dpop_jwk"])
    jkt = thumbprint(dpop.as_dict(private=False))
    form = urlencode({"client_id": "bench-mobile", "purpose": "refresh"})
    got = client.post("/attestation/challenge", form, content_type="application/x-www-form-urlencoded")
    state = {"token": f"bench-att-{item['j']}", "challenge": got.json()["attestation_challenge"]}

    def one(i: int) -> object:
        binding = RequestBinding(state["challenge"], "bench-mobile", "refresh_token", grant_hash(state["token"]),
                                 dpop_jkt=jkt)
        evidence = sim.refresh_params(binding, integrity="classic") if platform == "android" else (
            sim.assertion_params(binding))
        data = {"grant_type": "refresh_token", "refresh_token": state["token"], "client_id": "bench-mobile",
                **evidence}
        proof = create_proof(dpop, method="POST", url="https://localhost/token", now=datetime.now(UTC))
        response = client.post("/token", urlencode(data), content_type="application/x-www-form-urlencoded",
                               HTTP_DPOP=proof)
        assert response.status_code == 200, response.content
        state["token"] = response.json()["refresh_token"]
        state["challenge"] = response["OAuth-Client-Attestation-Challenge"]
        return response

    return one


def profile(args: argparse.Namespace) -> None:
    import logging

    import django

    django.setup()
    logging.getLogger("vigil.security").handlers = [logging.NullHandler()]
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from pyinstrument import Profiler

    client = Client(HTTP_HOST="localhost", HTTP_X_FORWARDED_PROTO="https")
    one = request_maker(client, args.kind)
    for i in range(1, 21):  # warm: keys loaded, connections open
        one(i)
    with CaptureQueriesContext(connection) as captured:
        one(21)
    print(f"-- {len(captured.captured_queries)} SQL statements for one {args.kind}:")
    for q in captured.captured_queries:
        print("  ", q["sql"][:220])
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for i in range(22, 22 + args.requests):
        one(i)
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=args.all))
    if args.html:
        Path(args.html).write_text(profiler.output_html())


def request_maker(client: object, kind: str) -> object:
    """A callable ``one(i)`` doing the i-th request of ``kind`` through Django's test client."""
    from bench.seed_sql import REDIRECT_URI, code, refresh_token, verifier

    platforms = {"attested_refresh": "ios", "attested_refresh_android": "android"}
    attested = attested_device(client, platforms[kind]) if kind in platforms else None

    def one(i: int) -> None:
        if attested is not None:
            attested(i)
            return
        if kind == "refresh":
            form = {"grant_type": "refresh_token", "refresh_token": refresh_token(i), "client_id": "bench-mobile"}
        else:
            form = {"grant_type": "authorization_code", "code": code(i), "redirect_uri": REDIRECT_URI,
                    "client_id": "bench-mobile", "code_verifier": verifier(i)}
        response = client.post("/token", urlencode(form), content_type="application/x-www-form-urlencoded")
        assert response.status_code == 200, response.content

    return one


if __name__ == "__main__":
    main()
