"""The request_uri fetch gives up after ``DEADLINE`` seconds *in all* (RFC 9101 §10.4.1: the
server's own resources), even against a server that trickles its answer a byte at a time so
that no single read ever times out. Each case runs a real TLS server on 127.0.0.1 that
trickles for far longer than the deadline."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from idp.oauth import request_uri_fetch

from .test_request_uri_fetch import _certificate

#: The servers are on 127.0.0.1, which core.outbound refuses unless told otherwise.
pytestmark = pytest.mark.usefixtures("allow_private_outbound")
DEADLINE = 0.6
TRICKLE_SECONDS = 0.1
#: Bytes each server trickles: 40 at 0.1 s is 4 s, many times the deadline.
TRICKLED = 40
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/jwt\r\nContent-Length: %d\r\n\r\n" % TRICKLED


def _trickle(connection: ssl.SSLSocket, data: bytes) -> None:
    for byte in data:
        connection.sendall(bytes([byte]))
        time.sleep(TRICKLE_SECONDS)


def _serve(listener: socket.socket, context: ssl.SSLContext, stage: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            raw, _ = listener.accept()
        except OSError:
            return
        try:
            with context.wrap_socket(raw, server_side=True) as connection:
                connection.recv(4096)  # the request
                if stage == "headers":
                    _trickle(connection, HEAD)
                else:
                    connection.sendall(HEAD)
                    _trickle(connection, b"e" * TRICKLED)
        except OSError:
            continue  # the client gave up: the point of the test


@pytest.fixture(params=["headers", "body"])
def trickling_server(request: Any, tmp_path: Path, monkeypatch: Any) -> Iterator[str]:
    cert, key = _certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(listener, context, request.param, stop), daemon=True)
    thread.start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setattr(request_uri_fetch, "DEADLINE", DEADLINE)
    yield f"https://127.0.0.1:{listener.getsockname()[1]}/object"
    stop.set()
    listener.close()


def test_a_trickling_server_is_cut_off_at_the_deadline(trickling_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(request_uri_fetch.FetchFailed, match="too slow"):
        request_uri_fetch.fetch(trickling_server)
    assert time.monotonic() - started < DEADLINE + 0.5


def test_a_fetch_within_the_deadline_is_not_cut(tmp_path: Path, monkeypatch: Any) -> None:
    """The watchdog stands down once the fetch is done: a later deadline cuts nothing."""
    cert, key = _certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        raw, _ = listener.accept()
        with context.wrap_socket(raw, server_side=True) as connection:
            connection.recv(4096)
            body = b"a.b.c"
            connection.sendall(HEAD.replace(b"%d" % TRICKLED, b"%d" % len(body)) + body)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setattr(request_uri_fetch, "DEADLINE", DEADLINE)
    assert request_uri_fetch.fetch(f"https://127.0.0.1:{listener.getsockname()[1]}/object") == "a.b.c"
    thread.join(5)
    listener.close()
