"""Real services a test starts, breaks and restores for the outage tests (docs/operations.md
"Outages"): a private ``redis-server``, a TCP proxy in front of PostgreSQL that can be cut, and
a gunicorn serving Vigil on the test database. Each takes a free port (bind ``127.0.0.1:0``)
and is stopped by the test that started it; the shared PostgreSQL and Redis are never touched.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from .celery_support import worker_database_url

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, requests.RequestException):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _ends(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class PrivateRedis:
    """A ``redis-server`` of the test's own, without persistence, on a fixed free port so
    that a restart comes back at the same address."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, what=f"redis-server on {self.port}")

    def answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        _ends(self.proc)
        self.proc = None


class CuttableProxy:
    """A TCP proxy to ``upstream``. ``cut()`` closes every connection and stops listening
    (new connections are refused, as with a PostgreSQL that is down); ``restore()`` listens
    again on the same port."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.accepted = 0

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    restore = start

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    stop = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    server.close()
                    return
                self._sockets |= {client, server}
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        pair = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (a, b):
                with self._lock:
                    self._sockets.discard(sock)
                try:
                    sock.close()
                except OSError:
                    pass


class Gunicorn:
    """Vigil under gunicorn (one sync worker, as deployed) on the test database, reached
    through ``database_host``/``database_port`` when given (the proxy)."""

    def __init__(self, *, log_dir: Path, redis_url: str, debug: bool, database_port: int | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / "gunicorn.log"
        database_url = worker_database_url()
        if database_port is not None:
            database_url = database_url.replace(database_url.split("@", 1)[1].split("/", 1)[0],
                                                f"127.0.0.1:{database_port}", 1)
        self.env = {
            **os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "IDP_ISSUER": self.base,
            "DJANGO_DEBUG": "1" if debug else "0", "VIGIL_TESTING": "1", "DATABASE_CONNECT_TIMEOUT": "2",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "idp.wsgi", "--workers", "1", "--worker-class", "sync",
                 "--bind", f"127.0.0.1:{self.port}", "--timeout", "60", "--no-control-socket"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(lambda: requests.get(f"{self.base}/.well-known/openid-configuration", timeout=2).ok,
                   timeout=60, what=f"gunicorn on {self.port} (log: {self.log})")
        self.worker_pids = self._worker_pids()

    def _worker_pids(self) -> set[int]:
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return {int(pid) for pid in children.read_text().split()} if children.exists() else set()

    def assert_not_restarted(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"gunicorn exited; log: {self.log}"
        assert self._worker_pids() == self.worker_pids, "the web worker was restarted"

    def stop(self) -> None:
        _ends(self.proc)
        self.proc = None
