"""The bench's own PostgreSQL server, with the settings a deployment of this size would use.

``bench/run.py`` starts one for each run (``initdb`` into a temporary directory, ``pg_ctl``
on a free port on 127.0.0.1) unless ``BENCH_PG`` names a server to use instead; Vigil and
django-oauth-toolkit both run on it. The machine's shared PostgreSQL (CI's, the tests') keeps
Debian's defaults, 128 MB of ``shared_buffers`` among them: far below the working set of a
million sessions (tables and indexes of several hundred MB), so at 1M nearly every look-up
read a page from the operating system instead of PostgreSQL's own buffers (issue 19: "1M
sessions within 10% of 10k, with the PostgreSQL settings documented and used by the bench").

``SETTINGS`` are ordinary production tuning for a host with this machine's 24 GiB (pgtune's
"web application" profile, rounded): nothing trades durability for speed (``fsync``,
``synchronous_commit`` and ``full_page_writes`` stay on; every commit is flushed as in
production). docs/benchmarks.md and docs/operations.md ("PostgreSQL settings") repeat them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(os.environ.get("BENCH_PG_BIN", "/usr/lib/postgresql/15/bin"))

#: What the bench's server runs with (``postgres -c name=value``), each for a reason.
SETTINGS: dict[str, str] = {
    # The working set of 1M sessions (tokens, sessions, users and their indexes, ~670 MB) fits:
    # docs/operations.md "PostgreSQL for a million sessions" advises 1 GB, and the bench checks it.
    "shared_buffers": "1GB",
    # What the planner may assume the OS caches besides (half the machine's memory).
    "effective_cache_size": "12GB",
    # Local SSD storage: random reads cost about what sequential ones do.
    "random_page_cost": "1.1",
    # The bulk seed of a million sessions builds its indexes in memory.
    "maintenance_work_mem": "512MB",
    # No forced checkpoint in the middle of a measured window (the defaults, 1 GB and 5 min,
    # checkpoint during the seed and again while measuring).
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "checkpoint_completion_target": "0.9",
}


@dataclass
class Server:
    url: str
    datadir: Path
    port: int

    def stop(self) -> None:
        subprocess.run(_as_postgres([str(BIN / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(self.datadir, ignore_errors=True)


def _as_postgres(cmd: list[str]) -> list[str]:
    """``initdb`` and ``pg_ctl`` refuse root: run them as the ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(log: Path) -> Server:
    """A new cluster with ``SETTINGS``, trust authentication on 127.0.0.1, user ``postgres``."""
    if not (BIN / "initdb").exists():
        raise SystemExit(f"no PostgreSQL binaries in {BIN} (apt-get install postgresql, or set BENCH_PG_BIN); "
                         "or set BENCH_PG=postgres://... to bench on a running server")
    datadir = Path(tempfile.mkdtemp(prefix="vigil-bench-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(datadir, entry.pw_uid, entry.pw_gid)
    _run([str(BIN / "initdb"), "-D", str(datadir), "-A", "trust", "-U", "postgres", "--no-sync"], datadir, log)
    port = _free_port()
    options = " ".join([f"-c listen_addresses=127.0.0.1 -p {port} -k {datadir}",
                        *(f"-c {name}={value}" for name, value in SETTINGS.items())])
    _run([str(BIN / "pg_ctl"), "-D", str(datadir), "-o", options, "-l", str(datadir / "log"), "-w", "-t", "60",
          "start"], datadir, log)
    server = Server(f"postgres://postgres@127.0.0.1:{port}", datadir, port)
    _wait(server, log)
    return server


def _run(cmd: list[str], datadir: Path, log: Path) -> None:
    """One step of the set-up; a failure says which and where its output went, and leaves nothing."""
    done = subprocess.run(_as_postgres(cmd), capture_output=True, timeout=120)
    if done.returncode != 0:
        server_log = datadir / "log"
        log.write_bytes(done.stdout + done.stderr + (server_log.read_bytes() if server_log.exists() else b""))
        shutil.rmtree(datadir, ignore_errors=True)
        raise SystemExit(f"the bench's PostgreSQL: {Path(cmd[0]).name} failed ({done.returncode}); output: {log} "
                         "(or set BENCH_PG=postgres://... to bench on a running server)")


def _wait(server: Server, log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(f"{server.url}/postgres", connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                shutil.copy(server.datadir / "log", log)
                server.stop()
                raise SystemExit(f"the bench's PostgreSQL did not start; log: {log}") from None
            time.sleep(0.2)


def settings_in_effect(url: str) -> dict[str, str]:
    """What the server actually runs with, for the report (also for a ``BENCH_PG`` server)."""
    import psycopg

    with psycopg.connect(f"{url}/postgres") as conn:
        rows = conn.execute("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s) ORDER BY name",
                            [list(SETTINGS)]).fetchall()
    return dict(rows)
