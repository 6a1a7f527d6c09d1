"""What a bench run starts, and how it is removed on every exit (``bench/run.py``).

The bench's own PostgreSQL (``bench/pg_server.py``) or ``BENCH_PG``'s, the throwaway databases
on it, Redis database 13 (Vigil's cache, flushed), the two systems' WSGI servers (each in a
process group of its own, killed by that group: nothing else is touched) and the child
commands' logs. ``cleanup`` undoes all of it, failures and Ctrl-C included.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from enum import StrEnum
from pathlib import Path
from typing import Any

import pg_server  # bench/, beside this script (run as bench/run.py)
import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VIGIL_BIN = ROOT / ".venv" / "bin"
DOT_BIN = BENCH / ".venv-dot" / "bin"
DOT_PROJECT = BENCH / "dot_project"
# The bench's own PostgreSQL (bench/pg_server.py: tuned, started by start_postgres()), or BENCH_PG's.
# Other modules read it as run_services.PG, when they need it: start_postgres() sets it.
PG = os.environ.get("BENCH_PG", "")
# The same (empty) gunicorn settings for both servers: not Vigil's ./gunicorn.conf.py (gthread, access log).
BENCH_GUNICORN_CONFIG = Path(__file__).resolve().parent / "gunicorn_bench.py"
REDIS_URL = "redis://127.0.0.1:6379/13"
STRIPPED_ENV = ("DJANGO_", "IDP_", "ACCOUNTS_", "ATTESTATION_", "SESSIONS_", "VIGIL_", "DATABASE_URL", "REDIS_URL",
                "CELERY_", "AUTHLIB_")


# --------------------------------------------------------------------------- cleanup of what we start
_servers: list[subprocess.Popen[bytes]] = []
_databases: list[str] = []
_postgres: list[Any] = []  # bench/pg_server.Server
LOGDIR = Path(tempfile.mkdtemp(prefix="vigil-bench-"))


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
    (LOGDIR / "attested-devices.json").unlink(missing_ok=True)


def _on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def remove_on_exit() -> None:
    """Run ``cleanup`` at exit, and turn SIGTERM, SIGINT and SIGHUP into an exit that does."""
    atexit.register(cleanup)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


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


def start_postgres() -> None:
    """Use ``BENCH_PG`` as it is, or start the bench's own tuned server (``bench/pg_server.py``)."""
    global PG
    if PG:
        return
    server = pg_server.start(LOGDIR / "postgresql.log")
    _postgres.append(server)
    PG = server.url
    tuned = ", ".join(f"{name}={value}" for name, value in pg_server.SETTINGS.items())
    print(f"postgresql: the bench's own on port {server.port} ({tuned})", flush=True)


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


def run(cmd: list[str], env: dict[str, str], cwd: Path, label: str) -> str:
    log = LOGDIR / f"{label}.log"
    with open(log, "ab") as err:
        proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=err, timeout=1800)
    if proc.returncode != 0:
        sys.stderr.write(log.read_text()[-4000:])
        raise SystemExit(f"{label} failed ({proc.returncode}); log: {log}")
    return proc.stdout.decode()


# --------------------------------------------------------------------------- the WSGI servers
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
    log = LOGDIR / f"{label}-{server}.log"
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
