"""The load generator's own HTTP reader (``bench/loadgen_http.py``): the bench counts an answer only
if it was read whole, so a reader that accepted a cut-off body would inflate a rate."""

from __future__ import annotations

import importlib
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))  # as scripts/bench.sh runs it
loadgen_http: Any = importlib.import_module("loadgen_http")  # bench/ is not type-checked (pyproject.toml)


def test_a_response_with_a_length_is_read_with_its_bench_headers() -> None:
    raw = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Bench-Queries: 2\r\nDPoP-Nonce: n1\r\n"
           b"OAuth-Client-Attestation-Challenge: c1\r\n\r\nhello")
    reply = loadgen_http.parse_reply(raw)
    assert (reply.status, reply.body, reply.queries, reply.dpop_nonce, reply.challenge) == (200, b"hello", 2, "n1", "c1")


def test_a_chunked_response_is_joined() -> None:
    raw = b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
    reply = loadgen_http.parse_reply(raw)
    assert (reply.status, reply.body, reply.queries) == (400, b"abcde", None)


@pytest.mark.parametrize("raw", [b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello", b"HTTP/1.1 200 OK\r\nContent-"])
def test_a_response_cut_short_is_an_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        loadgen_http.parse_reply(raw)


def test_a_request_reaches_a_server_whole() -> None:
    """The form, the headers and the length the server sees."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def answer() -> None:
        conn, _ = server.accept()
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"b=2"):
            data += conn.recv(65536)
        seen.append(data)
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    reply = loadgen_http.request(server.getsockname()[1], "POST", "/token", {"a": "1 x", "b": "2"}, {"DPoP": "p"})
    thread.join(5)
    server.close()
    assert (reply.status, reply.body) == (201, b"ok")
    head = seen[0].split(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /token HTTP/1.1\r\n")
    assert "\r\nDPoP: p" in head and "\r\nContent-Length: 9" in head and "\r\nHost: localhost" in head
    assert seen[0].endswith(b"\r\n\r\na=1+x&b=2")
