"""Several instances of Vigil on one machine, standing in for several machines
(``tests/test_multi_instance.py``; docs/operations.md "Scaling out"): two gunicorn instances
on their own ports behind one nginx, two Celery workers and a beat, on one PostgreSQL
database (pytest-django's ``test_*``) and one Redis (``REDIS_URL``: the shared cache and the
broker).

Every process is started as deployed (``gunicorn -c gunicorn.conf.py``, ``celery -A vigil
worker`` with its default prefork pool, ``celery -A vigil beat``), with its PID kept and its
own log, and stopped with SIGTERM to that PID. What differs from production, and why:

- the workers consume a queue of this deployment only (``-Q``), so nothing another test left
  on the broker reaches them; the periodic entries the tests add name that queue;
- ``CELERY_VISIBILITY_TIMEOUT`` is a few seconds, so a killed worker's message comes back in
  seconds rather than an hour;
- ``VIGIL_BEAT_STANDBY_SECONDS=1``: a standby beat asks for the beat lock every second.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from celery import Celery

from tests import live_stack
from tests.celery_support import worker_database_url

ROOT = Path(__file__).resolve().parent.parent
VISIBILITY_TIMEOUT = 6  # seconds; above the time a task of these tests needs to get going


class Deployment:
    """The processes of one deployment; ``base`` is nginx (the issuer), ``a`` and ``b`` the
    two web instances behind it."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = live_stack.free_port()
        self.base = f"http://localhost:{self.port}"
        self.queue = f"vigil-multi-{uuid.uuid4().hex[:8]}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_TRUST")}
        self.env.update({
            "DATABASE_URL": worker_database_url(), "VIGIL_TESTING": "1", "IDP_ISSUER": self.base,
            "CELERY_BROKER_URL": os.environ["REDIS_URL"], "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "VIGIL_BEAT_STANDBY_SECONDS": "1", "VIGIL_VAR_DIR": str(workdir / "var"), "DJANGO_DEBUG": "0",
        })
        broker = self.env["CELERY_BROKER_URL"]
        self.a = live_stack.Gunicorn(workdir, self.base, CELERY_BROKER_URL=broker)
        self.b = live_stack.Gunicorn(workdir, self.base, CELERY_BROKER_URL=broker)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started_at: dict[str, int] = {}  # where each process's log begins (a restart appends)
        self.nginx = ExitStack()
        self._sender: Celery | None = None

    def sender(self) -> Celery:
        """A Celery app that sends to this deployment's broker (a web process's role)."""
        if self._sender is None:
            self._sender = Celery("vigil-multi-sender", broker=self.env["CELERY_BROKER_URL"], set_as_current=False)
        return self._sender

    # ------------------------------------------------------------------ Celery processes
    def _celery(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        self.started_at[name] = len(self.log(name))
        with (self.workdir / f"{name}.log").open("ab") as log:  # a restart appends
            # Its own process group: "the worker" is the main process and its pool children.
            proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "vigil", *args], cwd=ROOT, env=self.env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def worker(self, name: str, *, wait: bool = True) -> subprocess.Popen[bytes]:
        proc = self._celery(name, "worker", "--loglevel=INFO", "--concurrency=1", "-Q", self.queue,
                            "-n", f"{name}@%h", "--without-heartbeat", "--without-gossip", "--without-mingle")
        if wait:
            self.wait_ready(name)
        return proc

    def wait_ready(self, worker: str) -> None:
        self.wait(lambda: " ready." in self.log(worker)[self.started_at[worker]:], what=f"{worker} to be ready")

    def beat(self, name: str) -> subprocess.Popen[bytes]:
        """A beat with its own pid file, as on another host (on one host, beat's default pid
        file already refuses a second beat started from the same directory)."""
        return self._celery(name, "beat", "--loglevel=INFO", "--max-interval=1",
                            f"--pidfile={self.workdir / (name + '.pid')}",
                            f"--schedule={self.workdir / (name + '-schedule')}")

    def kill(self, name: str) -> None:
        """SIGKILL the whole process (its pool children too), as a host dying would."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    # ------------------------------------------------------------------ the whole
    def start(self) -> None:
        """Everything at once, then wait for each (about 15 s on two busy cores)."""
        self.a.launch()
        self.b.launch()
        self.worker("worker-1", wait=False)
        self.worker("worker-2", wait=False)
        self.beat("beat-1")
        self.a.wait_ready()
        self.b.wait_ready()
        self.nginx.enter_context(live_stack.nginx(self.workdir, [self.a.port, self.b.port], self.port))
        self.wait_ready("worker-1")
        self.wait_ready("worker-2")
        self.wait(lambda: "holding the beat lock" in self.log("beat-1"), what="beat-1 to hold the beat lock")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            live_stack.stop(proc)
        self.procs.clear()
        self.nginx.close()
        if self._sender is not None:
            self._sender.close()
        self.a.stop()
        self.b.stop()

    # ------------------------------------------------------------------ looking
    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def count(self, pattern: str, *names: str) -> int:
        return sum(len(re.findall(pattern, self.log(name))) for name in names)

    def output(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}"
                         for p in sorted(self.workdir.glob("*.log")))

    def wait(self, condition: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}\n{self.output()}")
