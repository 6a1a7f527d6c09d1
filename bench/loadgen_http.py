"""The load generator's HTTP client (``bench/loadgen.py``): one request per connection, on a
bare socket, and a reader that counts an answer only if it was read whole.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlencode

HOST = "127.0.0.1"
BASE_HEADERS = {"Host": "localhost", "X-Forwarded-Proto": "https", "Connection": "close"}
FORM = "application/x-www-form-urlencoded"


@dataclass
class Reply:
    status: int
    body: bytes
    queries: int | None
    challenge: str | None = None
    dpop_nonce: str | None = None


def request(port: int, method: str, path: str, form: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> Reply:
    """One HTTP/1.1 request on a connection of its own (``Connection: close``, as a device's
    first request on a new connection), read to the server's close.

    Written on a bare socket, not ``http.client``: the load generator shares the two cores with
    the server it measures, and ``http.client`` (its header parsing through ``email``) cost
    about 0.1 ms more CPU per request, on every scenario of both systems alike (docs/benchmarks.md)."""
    body = urlencode(form).encode() if form is not None else b""
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in {**BASE_HEADERS, **(headers or {})}.items()]
    if form is not None:
        lines += [f"Content-Type: {FORM}", f"Content-Length: {len(body)}"]
    with socket.create_connection((HOST, port), timeout=30) as conn:
        conn.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return parse_reply(b"".join(chunks))


def parse_reply(raw: bytes) -> Reply:
    """Status, headers and body of one HTTP/1.1 response (``Content-Length``, chunked, or to the
    close); a response cut short raises ``ValueError``, counted as an error."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"no complete response ({len(raw)} bytes)")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    found: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    if found.get("transfer-encoding", "").lower() == "chunked":
        rest = _dechunk(rest)
    elif "content-length" in found:
        if len(rest) < int(found["content-length"]):
            raise ValueError("response body cut short")
        rest = rest[: int(found["content-length"])]
    queries = found.get("x-bench-queries")
    return Reply(status, rest, int(queries) if queries is not None else None,
                 found.get("oauth-client-attestation-challenge"), found.get("dpop-nonce"))


def _dechunk(data: bytes) -> bytes:
    out: list[bytes] = []
    position = 0
    while True:
        end = data.index(b"\r\n", position)
        size = int(data[position:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[end + 2:end + 2 + size])
        position = end + 2 + size + 2
