"""The two systems under test (``bench/run.py``): Vigil and django-oauth-toolkit, each with
its production settings (docs/benchmarks.md "What one run does", 2 and 3), its database
migrated and seeded in bulk, and its server started on a free port.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from typing import Any

import run_services as services
from run_services import (
    BENCH,
    DOT_BIN,
    DOT_PROJECT,
    LOGDIR,
    REDIS_URL,
    ROOT,
    VIGIL_BIN,
    base_env,
    create_database,
    flush_redis,
    run,
    start_server,
)

VIGIL_DB, DOT_DB = "vigil_bench", "vigil_bench_dot"


def vigil_env(db_url: str) -> dict[str, str]:
    return {
        **base_env(),
        "DJANGO_SETTINGS_MODULE": "bench.bench_settings",
        "DATABASE_URL": db_url,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "IDP_KEY_ENCRYPTION_SECRET": secrets.token_urlsafe(32),
        "IDP_ISSUER": "https://localhost",
        "DJANGO_BEHIND_TLS_PROXY": "1",
        "REDIS_URL": REDIS_URL,
        "BENCH_COUNT_QUERIES": "1",
        # All simulated devices share 127.0.0.1: lift the per-IP challenge rate (120/min).
        "ATTESTATION_CHALLENGE_RATE": "1000000/min",
        "PYTHONPATH": str(ROOT),
    }


def dot_env(db_url: str) -> dict[str, str]:
    return {
        **base_env(),
        "DJANGO_SETTINGS_MODULE": "dot_project.settings",
        "DATABASE_URL": db_url,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "BENCH_COUNT_QUERIES": "1",
        "PYTHONPATH": f"{DOT_PROJECT}:{BENCH}",
    }


def codes_needed(args: argparse.Namespace) -> int:
    per_window = 1500 * (args.warmup + args.duration)
    return int(per_window * len(args.devices) * args.rounds) + 1000


def setup_vigil(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    db_url = create_database(VIGIL_DB)
    env = vigil_env(db_url)
    flush_redis()
    print("vigil: migrate and seed", flush=True)
    run([str(VIGIL_BIN / "python"), "manage.py", "migrate", "--noinput", "-v0"], env, ROOT, "vigil-migrate")
    started = time.monotonic()
    attested_keys = LOGDIR / "attested-devices.json"
    attested = 4 * max(args.devices) if args.attested else 0
    android = attested if args.android else 0
    out = run([str(VIGIL_BIN / "python"), "-m", "bench.seed_vigil", "--sessions", str(args.sessions),
               "--codes", str(codes_needed(args)), "--attested", str(attested), "--attested-android", str(android),
               "--play-integrity-max-age", str(args.play_integrity_max_age), "--attested-out", str(attested_keys)],
              env, ROOT, "vigil-seed")
    seeded = json.loads(out.strip().splitlines()[-1])
    seeded["seed_wall_s"] = round(time.monotonic() - started, 2)
    if seeded.get("attested_error"):
        print(f"vigil: attested devices not seeded: {seeded['attested_error']}", flush=True)
    if seeded.get("attested_android_error"):
        print(f"vigil: attested Android devices not seeded: {seeded['attested_android_error']}", flush=True)
    spec = {
        "system": "vigil", "token_path": "/token", "jwks_path": "/jwks.json", "introspect_path": "/introspect",
        "state_file": str(LOGDIR / "vigil-state.json"), "vigil_root": str(ROOT), "issuer": "https://localhost",
        "pg_url": services.PG, "database": VIGIL_DB,
        "attested_keys": str(attested_keys),
        **{k: seeded[k] for k in ("client_id", "service_id", "service_secret", "redirect_uri", "sessions", "codes")},
    }
    return spec, seeded, env


def start_vigil(args: argparse.Namespace, spec: dict[str, Any], env: dict[str, str], label: str) -> Any:
    proc, port = start_server(VIGIL_BIN, "vigil.wsgi:application", env, ROOT, args.workers, label,
                              "/.well-known/openid-configuration", args.server)
    spec.update(port=port, master_pid=proc.pid)
    return proc


def setup_dot(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    db_url = create_database(DOT_DB)
    env = dot_env(db_url)
    print("dot: migrate and seed", flush=True)
    run([str(DOT_BIN / "python"), "manage.py", "migrate", "--noinput", "-v0"], env, DOT_PROJECT, "dot-migrate")
    started = time.monotonic()
    out = run([str(DOT_BIN / "python"), "seed_dot.py", "--sessions", str(args.sessions),
               "--codes", str(codes_needed(args))], env, DOT_PROJECT, "dot-seed")
    seeded = json.loads(out.strip().splitlines()[-1])
    seeded["seed_wall_s"] = round(time.monotonic() - started, 2)
    spec = {
        "system": "dot", "token_path": "/o/token/", "state_file": str(LOGDIR / "dot-state.json"),
        "pg_url": services.PG, "database": DOT_DB,
        **{k: seeded[k] for k in ("client_id", "redirect_uri", "sessions", "codes")},
    }
    return spec, seeded, env


def start_dot(args: argparse.Namespace, spec: dict[str, Any], env: dict[str, str]) -> Any:
    proc, port = start_server(DOT_BIN, "dot_project.wsgi:application", env, DOT_PROJECT,
                              args.workers, "dot", "/o/token/", args.server)
    spec.update(port=port, master_pid=proc.pid)
    return proc
