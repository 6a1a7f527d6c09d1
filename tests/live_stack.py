"""A real serving stack for tests: gunicorn (``gunicorn.conf.py``) running this project on the
test database, and Debian's nginx in front of it, each on free ports, started and stopped
by the test (docs/operations.md "Proxies", "Outages"); ``free_port`` and ``wait_until`` for
any other service a test starts.

The gunicorn subprocess uses pytest-django's ``test_*`` PostgreSQL database, so the test
sees the rows it writes (the tests are marked ``postgres`` and use ``transactional_db``), and
the test's Redis (``REDIS_URL``): throttles and the configuration generation are shared with
the test process, as they are between the processes of a deployment (also ``redis``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.celery_support import worker_database_url

ROOT = Path(__file__).resolve().parent.parent
NGINX = "/usr/sbin/nginx"

NGINX_CONF = """
{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/client_body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  upstream app {{ {servers} }}
  server {{
    listen 127.0.0.1:{port};
    client_body_timeout 10s;
    location / {{
      proxy_pass http://app;
      proxy_request_buffering on;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``check`` until it is true; connection errors count as "not yet"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, requests.RequestException):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_for(url: str, timeout: float = 30.0, **headers: str) -> None:
    """Until ``url`` answers without a server error."""
    wait_until(lambda: requests.get(url, timeout=2, headers=headers).status_code < 500, timeout, url)


def stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py -w 1`` on ``port`` (default: a free one), as deployed,
    on the test database; ``env`` overrides the environment (``DATABASE_URL``,
    ``DJANGO_DEBUG``...). The log is ``workdir/gunicorn-<port>.log``."""

    def __init__(self, workdir: Path, issuer: str | None = None, *args: str, port: int | None = None, **env: str):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.log = workdir / f"gunicorn-{self.port}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_TRUST")}
        self.env.update({
            "DATABASE_URL": worker_database_url(), "VIGIL_TESTING": "1", "IDP_ISSUER": issuer or self.base,
            "VIGIL_VAR_DIR": str(workdir / "var"), "DJANGO_DEBUG": "0", **env,
        })
        self.proc: subprocess.Popen[bytes] | None = None
        self.worker_pids: set[int] = set()

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start gunicorn without waiting for it (``wait_ready``), to start several at once."""
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "-w", "1",
                 "--no-control-socket", "-b", f"127.0.0.1:{self.port}", *self.args],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        wait_until(lambda: requests.get(f"{self.base}/.well-known/openid-configuration", timeout=2,
                                        headers={"Host": "localhost"}).ok,
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
        stop(self.proc)
        self.proc = None


@contextmanager
def gunicorn(workdir: Path, issuer: str | None = None, *args: str, port: int | None = None,
             **env: str) -> Iterator[Gunicorn]:
    """A started ``Gunicorn``, stopped on leaving."""
    server = Gunicorn(workdir, issuer, *args, port=port, **env)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def nginx(workdir: Path, app_port: int | Sequence[int], port: int) -> Iterator[int]:
    """Debian's nginx on ``port`` in front of ``app_port`` (the recipe's configuration), or
    of several gunicorn ports, taken in turn (nginx's round robin)."""
    directory = workdir / f"nginx-{port}"
    directory.mkdir()
    user = "user root;" if os.geteuid() == 0 else ""  # workers as nobody cannot enter pytest's 0700 dirs
    conf = directory / "nginx.conf"
    ports = [app_port] if isinstance(app_port, int) else list(app_port)
    servers = " ".join(f"server 127.0.0.1:{p};" for p in ports)
    conf.write_text(NGINX_CONF.format(user=user, d=directory, servers=servers, port=port))
    check = subprocess.run([NGINX, "-t", "-p", str(directory), "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([NGINX, "-p", str(directory), "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/.well-known/openid-configuration", Host="localhost")
        yield port
    finally:
        stop(proc, signal.SIGQUIT)


class SlowBody:
    """A client that announces a body and sends only its first bytes, then stalls."""

    def __init__(self, port: int, path: str = "/token", announced: int = 1000):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        head = (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {announced}\r\n\r\ngrant_type")
        self.sock.sendall(head.encode())

    def answer(self, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(200)
        except OSError:
            return b""

    def close(self) -> None:
        self.sock.close()
