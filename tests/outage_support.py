"""Real services a test starts, breaks and restores for the outage tests (docs/operations.md
"Outages"): a private ``redis-server`` and a TCP proxy in front of PostgreSQL that can be cut
(gunicorn is ``tests.live_stack``'s). Each takes a free port (bind ``127.0.0.1:0``) and is
stopped by the test that started it; the shared PostgreSQL and Redis are never touched.
"""

from __future__ import annotations

import select
import shutil
import socket
import subprocess
import threading

from .celery_support import worker_database_url
from .live_stack import free_port, stop, wait_until


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
        stop(self.proc)
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


def database_url_through(port: int) -> str:
    """The test database's URL, reached at ``127.0.0.1:port`` (a ``CuttableProxy``)."""
    url = worker_database_url()
    return url.replace(url.split("@", 1)[1].split("/", 1)[0], f"127.0.0.1:{port}", 1)
