"""Real servers on the loopback addresses for ``core.outbound``'s tests, and the two things those
tests fake because they are the dependency, not the subject: the resolver (a name's
addresses) and, as a safety net, any connection to an address off this machine (refused and
recorded, never sent)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core import outbound

#: Bytes a trickling server sends, one every ``TRICKLE_SECONDS``: 4 s, far past any test deadline.
TRICKLED = 40
TRICKLE_SECONDS = 0.1


def certificate(directory: Path, names: Sequence[str], addresses: Sequence[str] = ()) -> tuple[Path, Path]:
    """A self-signed CA certificate for ``names`` (DNS) and ``addresses`` (IP), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else addresses[0])])
    now = dt.datetime.now(dt.UTC)
    alternatives: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alternatives += [x509.IPAddress(ipaddress.ip_address(address)) for address in addresses]
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(alternatives), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "outbound-cert.pem", directory / "outbound-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def answer(status: int = 200, media_type: str = "application/json", body: bytes = b"{}") -> Callable[[Any], None]:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: {media_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return lambda connection: connection.sendall(head.encode() + body)


def trickle(stage: str, media_type: str = "application/json") -> Callable[[Any], None]:
    """Headers (``stage`` "headers") or the body ("body") a byte at a time."""
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {media_type}\r\nContent-Length: {TRICKLED}\r\n\r\n".encode()

    def send(connection: Any) -> None:
        if stage == "body":
            connection.sendall(head)
        for byte in head if stage == "headers" else b"e" * TRICKLED:
            connection.sendall(bytes([byte]))
            time.sleep(TRICKLE_SECONDS)

    return send


@dataclass
class LocalServer:
    """Accepts on ``host`` (a loopback address), counts connections, records the TLS server
    name each asked for, reads a request and answers it with ``behaviour``."""

    behaviour: Callable[[Any], None]
    host: str = "127.0.0.1"
    tls: ssl.SSLContext | None = None
    connections: int = 0
    server_names: list[str | None] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> LocalServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._listener = socket.create_server((self.host, 0), family=family)
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        if self.tls is not None:
            self.tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(raw,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            with self.tls.wrap_socket(raw, server_side=True) if self.tls else raw as connection:
                connection.recv(65536)
                self.behaviour(connection)
        except OSError:
            return  # the client gave up or refused our certificate


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@contextmanager
def serving(behaviour: Callable[[Any], None], host: str = "127.0.0.1",
            tls: ssl.SSLContext | None = None) -> Iterator[LocalServer]:
    server = LocalServer(behaviour, host, tls).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class FakeNetwork:
    """The resolver's answers, name by name and call by call (the last answer repeats), and
    the connections attempted to addresses off this machine (refused, never sent)."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    off_machine: list[tuple[str, int]] = field(default_factory=list)

    def resolve(self, host: str, port: int) -> list[tuple[Any, ...]]:
        self.lookups.append(host)
        calls = self.answers.get(host)
        if calls is None:
            raise socket.gaierror(socket.EAI_NONAME, "unknown in this test")
        addresses = calls[min(self.lookups.count(host), len(calls)) - 1]
        return [_address_info(address, port) for address in addresses]


def _address_info(address: str, port: int) -> tuple[Any, ...]:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))


def fake_network(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    """Install a fake resolver for ``core.outbound`` and refuse (and record) every connection
    to an address off this machine."""
    fake = FakeNetwork()
    monkeypatch.setattr(outbound, "resolve", fake.resolve)
    connect = socket.socket.connect

    def loopback_only(sock: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and not ipaddress.ip_address(address[0]).is_loopback:
            fake.off_machine.append((address[0], address[1]))
            raise ConnectionRefusedError("this test reaches no address off this machine")
        connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    return fake
