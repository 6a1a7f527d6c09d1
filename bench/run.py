"""Vigil's token endpoint against django-oauth-toolkit, side by side on this machine.

``scripts/bench.sh`` runs this with Vigil's virtualenv (``make bench``, ``make bench-quick``).
One run: throwaway PostgreSQL databases, bulk seeding, each server alone under the same
gunicorn settings, the load generator (``bench/loadgen.py``) as a separate process on
127.0.0.1, then tables, ratios (Vigil throughput / DOT throughput: above 1 means Vigil
serves more), the password-hashing rate, a JSON file in ``bench/results/`` and the
summary block of ``docs/benchmarks.md``. Servers and databases are removed on every exit.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pg_server  # bench/, beside this script (run as bench/run.py)
import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
VIGIL_BIN = ROOT / ".venv" / "bin"
DOT_BIN = BENCH / ".venv-dot" / "bin"
DOT_PROJECT = BENCH / "dot_project"
# The bench's own PostgreSQL (bench/pg_server.py: tuned, started in main()), or BENCH_PG's.
PG = os.environ.get("BENCH_PG", "")
VIGIL_DB, DOT_DB = "vigil_bench", "vigil_bench_dot"
# The same (empty) gunicorn settings for both servers: not Vigil's ./gunicorn.conf.py (gthread, access log).
BENCH_GUNICORN_CONFIG = Path(__file__).resolve().parent / "gunicorn_bench.py"
REDIS_URL = "redis://127.0.0.1:6379/13"
MARKS = "<!-- bench:latest-{mode}:start -->", "<!-- bench:latest-{mode}:end -->"
STRIPPED_ENV = ("DJANGO_", "IDP_", "ACCOUNTS_", "ATTESTATION_", "SESSIONS_", "VIGIL_", "DATABASE_URL", "REDIS_URL",
                "CELERY_", "AUTHLIB_")


# --------------------------------------------------------------------------- cleanup of what we start
_servers: list[subprocess.Popen[bytes]] = []
_databases: list[str] = []
_postgres: list[Any] = []  # bench/pg_server.Server
_logdir = Path(tempfile.mkdtemp(prefix="vigil-bench-"))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


def cleanup() -> None:
    while _servers:
        _stop(_servers.pop())
    while _databases:
        drop_database(_databases.pop())
    while _postgres:
        _postgres.pop().stop()
    flush_redis()
    # The simulated devices' private keys are not left behind; the logs are.
    (_logdir / "attested-devices.json").unlink(missing_ok=True)


def _on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------- services
def pg_admin() -> psycopg.Connection[Any]:
    return psycopg.connect(f"{PG}/postgres", autocommit=True)


def create_database(name: str) -> str:
    drop_database(name)
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    _databases.append(name)
    return f"{PG}/{name}"


def drop_database(name: str) -> None:
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis() -> None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=5).flushdb()
    except Exception:  # noqa: BLE001 - Redis is only Vigil's cache here; nothing to undo if it is down
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_ENV)}


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


def run(cmd: list[str], env: dict[str, str], cwd: Path, label: str) -> str:
    log = _logdir / f"{label}.log"
    with open(log, "ab") as err:
        proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=err, timeout=1800)
    if proc.returncode != 0:
        sys.stderr.write(log.read_text()[-4000:])
        raise SystemExit(f"{label} failed ({proc.returncode}); log: {log}")
    return proc.stdout.decode()


class Server(StrEnum):
    """The WSGI server both systems run under (``--server``)."""

    GUNICORN = "gunicorn"
    GRANIAN = "granian"


def server_command(server: Server, bin_dir: Path, app: str, workers: int, port: int, log: Path) -> list[str]:
    """The WSGI server both systems run under, with the same settings. gunicorn: sync workers,
    no access line, none of a deployment's ``gunicorn.conf.py``. granian (Rust HTTP, issue 19's
    "the WSGI server, measured"): its WSGI interface, one blocking thread per worker (as a sync
    worker), no access log; started as a module so the venv's own copy runs."""
    if server is Server.GRANIAN:
        return [str(bin_dir / "python"), "-m", "granian", "--interface", "wsgi", "--workers", str(workers),
                "--blocking-threads", "1", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                "--no-ws", app]
    return [str(bin_dir / "gunicorn"), "--config", str(BENCH_GUNICORN_CONFIG), "--no-control-socket",
            "--workers", str(workers), "--worker-class", "sync", "--bind", f"127.0.0.1:{port}", "--timeout", "60",
            "--error-logfile", str(log), "--log-level", "warning", app]


def start_server(bin_dir: Path, app: str, env: dict[str, str], cwd: Path, workers: int, label: str,
                 ready_path: str, server: Server = Server.GUNICORN) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = _logdir / f"{label}-{server}.log"
    cmd = server_command(server, bin_dir, app, workers, port, log)
    with open(log, "ab") as errors:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors,
                                start_new_session=True)
    _servers.append(proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{label}: {server} exited ({proc.returncode}); log: {log}")
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}{ready_path}",
                                         headers={"Host": "localhost", "X-Forwarded-Proto": "https"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    return proc, port
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return proc, port
            time.sleep(0.3)
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{label}: {server} not ready in 60 s; log: {log}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    _stop(proc)
    if proc in _servers:
        _servers.remove(proc)


def run_loadgen(spec: dict[str, Any], label: str) -> list[dict[str, Any]]:
    spec_path, out_path = _logdir / f"{label}-spec.json", _logdir / f"{label}-results.json"
    spec_path.write_text(json.dumps(spec))
    env = {**base_env(), "PYTHONPATH": str(BENCH)}
    proc = subprocess.run([str(VIGIL_BIN / "python"), str(BENCH / "loadgen.py"), str(spec_path), str(out_path)],
                          env=env, cwd=BENCH, timeout=3600)
    if proc.returncode != 0 or not out_path.exists():
        raise SystemExit(f"load generator failed for {label}")
    return json.loads(out_path.read_text())


# --------------------------------------------------------------------------- the plan
def codes_needed(args: argparse.Namespace) -> int:
    per_window = 1500 * (args.warmup + args.duration)
    return int(per_window * len(args.devices) * args.rounds) + 1000


def attestation_in_token_endpoint() -> str | None:
    """Where the token endpoint reads the attestation form parameters, if it does yet."""
    pattern = re.compile(r"""["'](attestation|attestation_challenge|client_data)["']""")
    for folder in ("idp/oauth", "sessions/flows"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "tests" in path.parts:
                continue
            if pattern.search(path.read_text(errors="replace")):
                return str(path.relative_to(ROOT))
    return None


def setup_vigil(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    db_url = create_database(VIGIL_DB)
    env = vigil_env(db_url)
    flush_redis()
    print("vigil: migrate and seed", flush=True)
    run([str(VIGIL_BIN / "python"), "manage.py", "migrate", "--noinput", "-v0"], env, ROOT, "vigil-migrate")
    started = time.monotonic()
    attested_keys = _logdir / "attested-devices.json"
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
        "state_file": str(_logdir / "vigil-state.json"), "vigil_root": str(ROOT), "issuer": "https://localhost",
        "pg_url": PG, "database": VIGIL_DB,
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
        "system": "dot", "token_path": "/o/token/", "state_file": str(_logdir / "dot-state.json"),
        "pg_url": PG, "database": DOT_DB,
        **{k: seeded[k] for k in ("client_id", "redirect_uri", "sessions", "codes")},
    }
    return spec, seeded, env


def start_dot(args: argparse.Namespace, spec: dict[str, Any], env: dict[str, str]) -> Any:
    proc, port = start_server(DOT_BIN, "dot_project.wsgi:application", env, DOT_PROJECT,
                              args.workers, "dot", "/o/token/", args.server)
    spec.update(port=port, master_pid=proc.pid)
    return proc


def plan(args: argparse.Namespace, attested: bool, android: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """(system, scenario) steps. Vigil and DOT alternate per scenario, in ABBA order over the
    rounds, so drift in the machine's other load falls on both alike. Vigil's attested (iOS,
    then Android) and plain refresh all sit beside DOT's refresh."""
    common = {"warmup": args.warmup, "duration": args.duration, "max_requests": args.max_requests}
    steps: list[tuple[str, dict[str, Any]]] = []
    refresh = ["attested_refresh"] if attested else []
    refresh += ["attested_refresh_android"] if android else []
    groups = {"refresh": [*refresh, "refresh"], "code_exchange": ["code_exchange"]}
    for group, mine in groups.items():
        for devices in args.devices:
            for r in range(args.rounds):
                window = [("vigil", kind) for kind in mine] + [("dot", f"dot_{group}")]
                for system, name in (window if r % 2 == 0 else window[::-1]):
                    kind = name.removeprefix("dot_")
                    steps.append((system, {"name": f"{name}@{devices}", "kind": kind, "devices": devices,
                                           **common}))
        if group == "refresh":
            # Introspection right after refreshes: it presents access tokens they received (5-minute life).
            for rate in args.rate:
                kind = mine[0]  # attested_refresh (iOS) when it runs
                steps.append(("vigil", {"name": f"{kind}@{rate}/s-open", "kind": kind, "devices": 64,
                                        "partitions": max(args.devices), "rate": rate, **common}))
            short = {**common, "duration": max(5, args.duration // 2)}
            steps.append(("vigil", {"name": "introspect@8", "kind": "introspect", "devices": 8, **short}))
            steps.append(("vigil", {"name": "jwks@8", "kind": "jwks", "devices": 8, **short}))
    return steps


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One scenario's rounds as one result: totals over the summed windows."""
    if len(parts) == 1:
        merged = dict(parts[0])
        merged["rounds"] = 1
        merged.pop("raw", None)
        return merged
    first = parts[0]
    elapsed = sum(p["duration_s"] for p in parts)
    ok = sum(p["ok"] for p in parts)
    n = sum(p["requests"] for p in parts)
    latencies = sorted(v for p in parts for v in p["raw"]["latencies_ms"])
    sql_n = sum(p["raw"]["sql_n"] for p in parts)
    per_k = 1000 / n if n else 0.0

    def pct(q: float) -> float:
        if not latencies:
            return 0.0
        return round(latencies[min(len(latencies) - 1, max(0, int(round(q / 100 * len(latencies) + 0.5)) - 1))], 2)

    statuses: dict[str, int] = {}
    for p in parts:
        for k, v in p["error_statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    return {
        **{k: first[k] for k in ("name", "kind", "system", "devices", "rate")},
        "rounds": len(parts),
        "rounds_rps": [p["throughput_rps"] for p in parts],
        "duration_s": round(elapsed, 3), "requests": n, "ok": ok, "errors": n - ok, "error_statuses": statuses,
        "error_samples": [e for p in parts for e in p["error_samples"]][:3],
        "throughput_rps": round(ok / elapsed, 1) if elapsed else 0.0,
        "latency_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": latencies[-1] if latencies else 0.0},
        "server_cpu_s_per_1k": round(sum(p["raw"]["server_cpu_s"] for p in parts) * per_k, 3),
        "db_cpu_s_per_1k": round(sum(p["raw"]["db_cpu_s"] for p in parts) * per_k, 3),
        "loadgen_cpu_s_per_1k": round(sum(p["raw"]["loadgen_cpu_s"] for p in parts) * per_k, 3),
        "peak_worker_rss_mb": max(p["peak_worker_rss_mb"] for p in parts),
        "worker_rss_mb": parts[-1]["worker_rss_mb"],
        "sql_per_request": round(sum(p["raw"]["sql_sum"] for p in parts) / sql_n, 2) if sql_n else None,
        "sql_per_request_max": max((p["sql_per_request_max"] or 0) for p in parts) or None,
        "served_before_django": sum(p.get("served_before_django", 0) for p in parts),
        "codes_exhausted": any(p["codes_exhausted"] for p in parts),
    }


def run_plan(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    vigil_spec, vigil_seed, vigil_environ = setup_vigil(args)
    dot_spec, dot_seed, dot_environ = setup_dot(args)
    vigil_proc = start_vigil(args, vigil_spec, vigil_environ, "vigil")
    dot_proc = start_dot(args, dot_spec, dot_environ)
    specs = {"vigil": vigil_spec, "dot": dot_spec}
    parts: dict[str, list[dict[str, Any]]] = {}
    order: list[str] = []
    attested = bool(vigil_seed.get("attested_sessions"))
    android = bool(vigil_seed.get("attested_android_sessions"))
    for i, (system, scenario) in enumerate(plan(args, attested, android)):
        for result in run_loadgen({**specs[system], "scenarios": [scenario]}, f"{i:02d}-{system}"):
            if result["name"] not in parts:
                order.append(result["name"])
            parts.setdefault(result["name"], []).append(result)
    stop_server(dot_proc)
    merged = [merge(parts[name]) for name in order]
    vigil = [r for r in merged if r["system"] == "vigil"]
    dot = [r for r in merged if r["system"] == "dot"]
    if args.scale and args.scale > args.sessions:
        # The comparison is between adjacent windows under the same conditions (DOT stopped,
        # same server settings): the 10k window right before extending, the 1M one right after.
        devices = args.devices[0]
        scenario = {"name": f"refresh@{devices}[{args.sessions:,} sessions]", "kind": "refresh", "devices": devices,
                    "warmup": args.warmup, "duration": args.duration, "max_requests": args.max_requests}
        for result in run_loadgen({**vigil_spec, "scenarios": [scenario]}, "vigil-scale-before"):
            result.pop("raw", None)
            vigil.append(result)
        stop_server(vigil_proc)
        print(f"vigil: extend to {args.scale:,} sessions", flush=True)
        started = time.monotonic()
        run([str(VIGIL_BIN / "python"), "-m", "bench.seed_vigil", "--extend", str(args.sessions),
             "--sessions", str(args.scale)], vigil_environ, ROOT, "vigil-scale-seed")
        vigil_seed["scale_seed_wall_s"] = round(time.monotonic() - started, 2)
        vigil_proc = start_vigil(args, vigil_spec, vigil_environ, "vigil-scale")
        scenario = {"name": f"refresh@{devices}[{args.scale:,} sessions]", "kind": "refresh", "devices": devices,
                    "warmup": args.warmup, "duration": args.duration, "max_requests": args.max_requests}
        for result in run_loadgen({**vigil_spec, "sessions": args.scale, "scenarios": [scenario]}, "vigil-scale"):
            result.pop("raw", None)
            vigil.append(result)
    stop_server(vigil_proc)
    return vigil, dot, {"vigil": vigil_seed, "dot": dot_seed}


def bench_logins(args: argparse.Namespace) -> dict[str, Any]:
    out = run([str(VIGIL_BIN / "python"), "-m", "bench.logins", "--seconds", str(args.login_seconds)],
              {**base_env(), "PYTHONPATH": str(ROOT)}, ROOT, "logins")
    return json.loads(out.strip().splitlines()[-1])


# --------------------------------------------------------------------------- reporting
def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    with pg_admin() as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    pg_settings = {"server": "BENCH_PG" if os.environ.get("BENCH_PG") else "the bench's own (bench/pg_server.py)",
                   **pg_server.settings_in_effect(PG)}
    dot_version = subprocess.run([str(DOT_BIN / "python"), "-c", "import oauth2_provider as o; print(o.__version__)"],
                                 capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(), "python": platform.python_version(), "postgresql": pg_version,
        "django_oauth_toolkit": dot_version, "vigil_commit": commit, "postgresql_settings": pg_settings,
    }


def _pg_line(m: dict[str, Any]) -> str:
    settings = dict(m.get("postgresql_settings") or {})
    server = settings.pop("server", "the machine's")
    return f"{server}: " + ", ".join(f"`{name}` {value}" for name, value in settings.items())


def start_postgres() -> None:
    """Use ``BENCH_PG`` as it is, or start the bench's own tuned server (``bench/pg_server.py``)."""
    global PG
    if PG:
        return
    server = pg_server.start(_logdir / "postgresql.log")
    _postgres.append(server)
    PG = server.url
    tuned = ", ".join(f"{name}={value}" for name, value in pg_server.SETTINGS.items())
    print(f"postgresql: the bench's own on port {server.port} ({tuned})", flush=True)


HEADER = ("| scenario | req/s | p50 ms | p95 ms | p99 ms | errors | server CPU s/1k | DB CPU s/1k "
          "| peak worker RSS MB | SQL/req |")


def table(results: list[dict[str, Any]]) -> list[str]:
    lines = [HEADER, "|" + "---|" * 10]
    for r in results:
        lat = r["latency_ms"]
        lines.append(
            f"| {r['name']} | {r['throughput_rps']:.1f} | {lat['p50']:.1f} | {lat['p95']:.1f} | {lat['p99']:.1f} "
            f"| {r['errors']} | {r['server_cpu_s_per_1k']:.2f} | {r['db_cpu_s_per_1k']:.2f} "
            f"| {r['peak_worker_rss_mb']:.0f} | {r['sql_per_request'] if r['sql_per_request'] is not None else '-'} |"
        )
    return lines


def ratios(vigil: list[dict[str, Any]], dot: list[dict[str, Any]], devices: list[int],
           attested_ran: bool) -> dict[str, float]:
    """``mine/theirs@d``: Vigil req/s over DOT req/s. ``cpu:mine/theirs@d``: DOT's CPU per
    request (gunicorn + PostgreSQL) over Vigil's, which other load on the machine skews less."""
    by_name = {r["name"]: r for r in vigil + dot}
    out: dict[str, float] = {}
    pairs = [("attested_refresh_android", "dot_refresh"), ("refresh", "dot_refresh"),
             ("code_exchange", "dot_code_exchange")]
    if attested_ran:
        pairs.insert(0, ("attested_refresh", "dot_refresh"))
    small = [r for r in vigil if r["name"].startswith(f"refresh@{devices[0]}[") and r["throughput_rps"]]
    if len(small) == 2:  # the scale run: [10k sessions] then [1M sessions], adjacent windows
        out["scale"] = round(small[1]["throughput_rps"] / small[0]["throughput_rps"], 2)
        out["scale_base"], out["scale_sessions"] = (
            float(r["name"].split("[")[1].split()[0].replace(",", "")) for r in small)
    for d in devices:
        for mine, theirs in pairs:
            a, b = by_name.get(f"{mine}@{d}"), by_name.get(f"{theirs}@{d}")
            if a and b and b["throughput_rps"]:
                out[f"{mine}/{theirs}@{d}"] = round(a["throughput_rps"] / b["throughput_rps"], 2)
                cpu_a = a["server_cpu_s_per_1k"] + a["db_cpu_s_per_1k"]
                cpu_b = b["server_cpu_s_per_1k"] + b["db_cpu_s_per_1k"]
                if cpu_a:
                    out[f"cpu:{mine}/{theirs}@{d}"] = round(cpu_b / cpu_a, 2)
    return out


def android_status(args: argparse.Namespace, seed: dict[str, Any], vigil: list[dict[str, Any]]) -> str:
    if any(r["kind"] == "attested_refresh_android" and r["ok"] for r in vigil):
        return "ran"
    if not (args.attested and args.android):
        return "skipped (--no-attested or --no-android)"
    if seed.get("attested_android_error"):
        return f"Android devices could not be seeded: {seed['attested_android_error']}"
    return "ran without a successful refresh: see its error samples"


def ratio_lines(found: dict[str, float], devices: list[int], attested_ran: bool, pending: str) -> list[str]:
    first = devices[0]
    refresh = "attested_refresh" if attested_ran else "refresh"
    lines = ["throughput ratios are Vigil req/s / DOT req/s; cpu ratios are DOT CPU per request / Vigil's "
             "(the WSGI server + PostgreSQL); above 1.00 favours Vigil"]
    for d in devices:
        for key in (f"attested_refresh/dot_refresh@{d}", f"attested_refresh_android/dot_refresh@{d}",
                    f"refresh/dot_refresh@{d}", f"code_exchange/dot_code_exchange@{d}"):
            if key in found:
                cpu = found.get("cpu:" + key, 0)
                lines.append(f"{d} devices: {key.split('@')[0]} = {found[key]:.2f} (cpu {cpu:.2f})")
    if "scale" in found:
        lines.append(f"scale: refresh at {found['scale_sessions']:,.0f} sessions / at {found['scale_base']:,.0f}, "
                     f"adjacent windows = {found['scale']:.2f} (target >= 0.90)")
    if not attested_ran:
        lines.append(f"attested_refresh: pending ({pending}); the plain refresh path is measured as `refresh`")
    lines.append(f"{refresh}/dot_refresh = {found.get(f'{refresh}/dot_refresh@{first}', 0.0):.2f}")
    lines.append(f"code_exchange/dot_code_exchange = {found.get(f'code_exchange/dot_code_exchange@{first}', 0.0):.2f}")
    return lines


def logins_lines(logins: dict[str, Any]) -> list[str]:
    lines = ["| hasher | parameters | ms per login | logins/s per core | logins/s on this box |",
             "|---|---|---|---|---|"]
    for h in logins["hashers"]:
        lines.append(f"| {h['name']} | {h['params']} | {h['ms_per_hash']:.1f} | {h['per_core']:.1f} "
                     f"| {h['box']:.1f} |")
    lines.append(f"| Keycloak (published) | argon2 defaults | - | {logins['keycloak_per_vcpu']} per vCPU "
                 f"| {logins['keycloak_per_vcpu'] * (os.cpu_count() or 1)} for {os.cpu_count()} vCPU |")
    return lines


def _server_line(config: dict[str, Any]) -> str:
    if config.get("server", Server.GUNICORN) == Server.GRANIAN:
        return f"granian {config['workers']} WSGI workers of one blocking thread each"
    return f"gunicorn {config['workers']} sync workers each"


def render_summary(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    lines = [
        f"Run {report['started_at']} ({report['mode']}), Vigil commit `{m['vigil_commit']}`, "
        f"results `{report['results_file']}`.",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}, "
        f"PostgreSQL {m['postgresql']} on the same cores ({_pg_line(m)}), "
        f"django-oauth-toolkit {m['django_oauth_toolkit']}, "
        f"{_server_line(report['config'])}, {report['config']['sessions']:,} seeded sessions. "
        f"1-minute load average at start / end: "
        f"{' / '.join(str(v) for v in report['load_average_1m'].values())} (anything above 0 is other work "
        "sharing the 2 cores).",
        "",
        "Vigil:",
        "",
        *table(report["vigil"]),
        "",
        "django-oauth-toolkit:",
        "",
        *table(report["dot"]),
        "",
        "Password logins (hash verification only):",
        "",
        *logins_lines(report["logins"]),
        "",
        "```",
        *report["ratio_lines"],
        "```",
    ]
    return lines


def update_docs(summary: list[str], mode: str) -> None:
    """Replace the block of this mode (``full`` or ``quick``) in docs/benchmarks.md."""
    start, end = (mark.format(mode=mode) for mark in MARKS)
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    if start not in text:
        text += f"\n## Latest {mode} run\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    DOCS.write_text(head + start + "\n" + "\n".join(summary) + "\n" + end + tail)


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about 4 minutes: 8 devices, short windows, no scale run")
    parser.add_argument("--sessions", type=int, default=10_000, help="live sessions seeded in each system")
    parser.add_argument("--scale", type=int, default=None,
                        help="then extend Vigil to this many sessions and measure refresh again (full: 1000000)")
    parser.add_argument("--devices", type=lambda s: [int(x) for x in s.split(",")], default=None,
                        help="concurrent devices, comma separated (quick: 8; full: 8,32)")
    parser.add_argument("--duration", type=int, default=None, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=int, default=None, help="unmeasured seconds before each window")
    parser.add_argument("--rate", type=lambda v: [int(x) for x in v.split(",") if int(x) > 0], default=None,
                        help="open-loop refresh arrival rates per second, comma separated (full: 50,200; 0 = off)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating Vigil/DOT windows per scenario")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1), help="server workers, both")
    parser.add_argument("--server", type=Server, choices=list(Server), default=Server.GUNICORN,
                        help="the WSGI server both systems run under (default gunicorn, as deployed)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="hard cap per scenario")
    parser.add_argument("--login-seconds", type=float, default=None)
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--no-attested", dest="attested", action="store_false",
                        help="skip the attested (App Attest + DPoP) refresh scenario, and the Android one")
    parser.add_argument("--no-android", dest="android", action="store_false",
                        help="skip the attested Android (key signature + Play Integrity + DPoP) refresh scenario")
    parser.add_argument("--play-integrity-max-age", type=int, default=0, metavar="MINUTES",
                        help="the bench Android app's play_integrity_max_age_minutes (default 0, Vigil's: "
                             "a Play Integrity verdict on every refresh)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.devices = args.devices or ([8] if quick else [8, 32])
    args.duration = args.duration or (10 if quick else 30)
    args.warmup = args.warmup if args.warmup is not None else (3 if quick else 5)
    args.rate = args.rate if args.rate is not None else ([] if quick else [50, 200])
    args.scale = args.scale if args.scale is not None else (0 if quick else 1_000_000)
    args.login_seconds = args.login_seconds or (2.0 if quick else 5.0)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    atexit.register(cleanup)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    started_at = datetime.now(UTC)
    command = "./scripts/bench.sh " + shlex.join(argv) if argv else "./scripts/bench.sh"
    mode = "quick" if args.quick else "full"
    print(f"bench ({mode}): logs in {_logdir}", flush=True)
    try:
        start_postgres()
        info = machine()
        load = {"start": os.getloadavg()[0]}
        vigil, dot, seeds = run_plan(args)
        load["end"] = os.getloadavg()[0]
        attested_ran = any(r["kind"] == "attested_refresh" and r["ok"] for r in vigil)
        if not args.attested:
            pending = "skipped with --no-attested"
        elif seeds["vigil"].get("attested_error"):
            pending = f"attested devices could not be seeded: {seeds['vigil']['attested_error']}"
        elif attestation_in_token_endpoint() is None:
            pending = "the token endpoint does not take attestation yet"
        else:
            pending = "the attested scenario ran without a successful refresh: see its error samples"
        print("password hashing", flush=True)
        logins = bench_logins(args)
    finally:
        cleanup()
    found = ratios(vigil, dot, args.devices, attested_ran)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    results_file = RESULTS / f"{stamp}-{mode}.json"
    report = {
        "started_at": started_at.strftime("%Y-%m-%d %H:%M UTC"), "mode": mode, "command": command,
        "results_file": str(results_file.relative_to(ROOT)), "machine": info,
        "config": {"server": args.server, "workers": args.workers,
                   "sessions": args.sessions, "scale": args.scale, "devices": args.devices,
                   "duration_s": args.duration, "rounds": args.rounds, "warmup_s": args.warmup,
                   "open_loop_rate": args.rate,
                   "ratio_definition": "Vigil throughput / django-oauth-toolkit throughput, same devices",
                   "attested_refresh": "ran" if attested_ran else f"pending: {pending}",
                   "attested_refresh_android": android_status(args, seeds["vigil"], vigil),
                   "play_integrity_max_age_minutes": args.play_integrity_max_age},
        "seed": seeds, "vigil": vigil, "dot": dot, "logins": logins,
        "ratios": found, "load_average_1m": {k: round(v, 2) for k, v in load.items()},
    }
    report["ratio_lines"] = ratio_lines(found, args.devices, attested_ran, pending)
    for secret_key in ("service_secret",):
        report["seed"]["vigil"].pop(secret_key, None)
    RESULTS.mkdir(exist_ok=True)
    results_file.write_text(json.dumps(report, indent=1) + "\n")
    summary = render_summary(report)
    if not args.no_docs:
        update_docs(summary, mode)
    print()
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
