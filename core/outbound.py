"""Outbound HTTP to a URL that someone other than the operator chose: a client's registered
``request_uri`` (RFC 9101 §5.2), a transmitter's ``jwks_uri`` and a receiver's push endpoint
(RFC 8935 §2), a client's ``backchannel_logout_uri`` (Back-Channel Logout 1.0 §2.5).

Whoever registers such a URL controls its DNS, so each exchange here:

- resolves the host once and refuses the whole exchange if any address is not public
  (RFC 9101 §10.4.1, server-side request forgery): loopback, private, link-local, shared
  (100.64/10), unique-local, site-local, documentation and benchmarking ranges, and the IPv4
  forms embedded in IPv6 (``::ffff:a.b.c.d``, 6to4, Teredo, NAT64 and local-use NAT64, SIIT,
  IPv4-compatible). Cloud metadata addresses, multicast, unspecified, broadcast and reserved
  addresses are always refused; the rest of those only while
  ``IDP_OUTBOUND_ALLOW_PRIVATE_ADDRESSES`` is off (the default);
- connects to the address it vetted, never resolving again (no DNS rebinding window between
  the check and the connection), while TLS still sends the host name as SNI and verifies the
  certificate for that name;
- uses no proxy and no ``.netrc`` from the environment (a CA bundle in ``REQUESTS_CA_BUNDLE``
  is honoured), follows no redirect, asks for an identity encoding, reads at most
  ``max_bytes`` of the body, and gives up after ``deadline`` seconds *in all*, the name's lookup included.

"In all" is a watchdog's work: ``requests``' timeouts bound each read, so a server that
trickles its TLS handshake, headers or body a byte at a time would otherwise hold the worker
for as long as it likes. When the deadline passes, the watchdog shuts the exchange's socket
down, which ends whatever read is waiting on it.

A refused destination is a security event (``outbound.destination_refused``); every failure
is one :class:`OutboundError` whose message is for the operator's log, not for the party that
registered the URL (it would tell a closed port from a TLS failure).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error

from .app_settings import app_settings
from .events import EventType, Outcome, record

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Instance metadata services (AWS, GCP and Azure; AWS over IPv6; Alibaba; Oracle): never reached.
CLOUD_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192"))
#: IPv6 prefixes whose last 32 bits are an IPv4 address: NAT64's well-known prefix (RFC 6052) and
#: its local-use one (RFC 8215, a /96 inside it, which may translate to private IPv4 addresses),
#: SIIT's IPv4-translated addresses (RFC 2765) and the deprecated IPv4-compatible ones (RFC 4291).
_EMBEDDING_IPV4 = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96", "::/96"))
#: Not globally reachable (IANA special-purpose registry; site-local, RFC 3879), whatever this
#: Python's ``is_global`` says (before 3.11.10 it calls them global).
_NEVER_GLOBAL = tuple(ipaddress.ip_network(n) for n in ("64:ff9b:1::/48", "fec0::/10"))


class Purpose(StrEnum):
    """Why Vigil reaches out (the ``purpose`` of a refusal event)."""

    REQUEST_URI = "request_uri"
    SSF_JWKS = "ssf_jwks"
    SSF_PUSH = "ssf_push"
    BACKCHANNEL_LOGOUT = "backchannel_logout"


class Refusal(StrEnum):
    """Why a destination address was refused (the ``reason`` of the event)."""

    CLOUD_METADATA = "cloud_metadata"
    NOT_UNICAST = "not_unicast"  # multicast, unspecified, broadcast, reserved: never a server
    PRIVATE = "private_address"  # lifted by IDP_OUTBOUND_ALLOW_PRIVATE_ADDRESSES


class OutboundError(Exception):
    """The exchange did not happen or did not finish; the message is for the operator's log."""


class DestinationRefused(OutboundError):
    """The host resolved to an address Vigil does not reach."""


class TooSlow(OutboundError):
    """The whole exchange did not finish within its deadline."""


class Unreachable(OutboundError):
    """No answer: name not found, connection refused, TLS failed, broken HTTP."""


@dataclass(frozen=True)
class Reply:
    status: int
    media_type: str
    body: bytes  # at most ``max_bytes``
    oversize: bool  # the body went on past ``max_bytes``


def refusal(address: IPAddress, *, allow_private: bool) -> Refusal | None:
    """Whether Vigil may connect to ``address``; an IPv4 address embedded in an IPv6 one is
    judged too (and alone for ``::ffff:a.b.c.d``, which *is* that IPv4 address)."""
    inner = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if inner is not None:
        found = refusal(inner, allow_private=allow_private)
        if found is not None or inner == getattr(address, "ipv4_mapped", None):
            return found
    if address in CLOUD_METADATA:
        return Refusal.CLOUD_METADATA
    if address.is_multicast or address.is_unspecified or (address.version == 4 and address.is_reserved):
        return Refusal.NOT_UNICAST  # 240/4 holds 255.255.255.255
    if not _global(address) and not allow_private:
        return Refusal.PRIVATE
    return None


def _global(address: IPAddress) -> bool:
    return address.is_global and not any(address in prefix for prefix in _NEVER_GLOBAL)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in prefix for prefix in _EMBEDDING_IPV4):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    """The host's addresses, ``socket.getaddrinfo``'s way; looked up once per connection."""
    return list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))


class _Refused(OSError):
    """Raised inside the connection (``requests`` wraps it); the guard keeps the reason."""


class _Watchdog:
    """Shuts down the sockets it watches once ``fire`` runs, unless ``stand_down`` ran first.
    Sockets are watched by descriptor (the TLS wrapper takes over the TCP socket's), and
    the lock keeps a shutdown from reaching a descriptor already closed and reused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._descriptors: list[int] = []
        self.fired = self._done = False

    def watch(self, descriptor: int) -> None:
        with self._lock:
            self._descriptors.append(descriptor)
            if self.fired:
                _shut_down(descriptor)

    def fire(self) -> None:
        with self._lock:
            if not self._done:
                self.fired = True
                for descriptor in self._descriptors:
                    _shut_down(descriptor)

    def stand_down(self) -> None:
        with self._lock:
            self._done = True


def _shut_down(descriptor: int) -> None:
    try:
        borrowed = socket.socket(fileno=descriptor)
    except OSError:
        return
    try:
        borrowed.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        borrowed.detach()  # the descriptor stays its connection's to close


class _Guard:
    """Resolves a host once, vets every address, connects to a vetted one within the deadline
    and hands the socket to the watchdog."""

    def __init__(self, watchdog: _Watchdog, ends_at: float, allow_private: bool):
        self.watchdog, self.ends_at, self.allow_private = watchdog, ends_at, allow_private
        self.refused: tuple[IPAddress, Refusal] | None = None

    def connect(self, host: str, port: int, options: list[tuple[int, int, int]] | None) -> socket.socket:
        found = self._resolved(host, port)
        for *_, sockaddr in found:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            reason = refusal(address, allow_private=self.allow_private)
            if reason is not None:
                self.refused = (address, reason)
                raise _Refused(f"{host} resolves to {address}")
        error: OSError = OSError(f"{host} has no address")
        for family, kind, proto, _, sockaddr in found:
            try:
                return self._connected(socket.socket(family, kind, proto), sockaddr, options)
            except OSError as failed:
                error = failed
        raise error

    def _resolved(self, host: str, port: int) -> list[tuple[Any, ...]]:
        """``resolve``, given up at the deadline: a lookup blocks in the C library, where the
        watchdog's shutdown cannot reach, and whoever registered the URL runs the name's DNS. A
        lookup given up on ends in its daemon thread, within the resolver's own timeouts."""
        found: list[tuple[Any, ...]] = []
        failed: list[Exception] = []

        def look_up() -> None:
            try:
                found.extend(resolve(host, port))
            except Exception as error:  # raised in the caller's thread below
                failed.append(error)

        lookup = threading.Thread(target=look_up, name="vigil-outbound-lookup", daemon=True)
        lookup.start()
        lookup.join(max(self.ends_at - time.monotonic(), 0))
        if lookup.is_alive():
            self.watchdog.fire()  # the deadline has passed: the exchange is over
            raise TimeoutError(f"{host} was not resolved within the deadline")
        if failed:
            raise failed[0]
        return found

    def _connected(self, sock: socket.socket, sockaddr: Any, options: list[tuple[int, int, int]] | None
                   ) -> socket.socket:
        try:
            for option in options or ():
                sock.setsockopt(*option)
            sock.settimeout(max(self.ends_at - time.monotonic(), 0.001))
            sock.connect(sockaddr)
        except OSError:
            sock.close()
            raise
        self.watchdog.watch(sock.fileno())
        return sock


class _GuardedAdapter(HTTPAdapter):
    """Direct connections only (no proxy), through the guard."""

    def __init__(self, guard: _Guard):
        super().__init__(max_retries=0)
        self.guard = guard

    def send(self, request: Any, stream: bool = False, timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=None)

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
                                        ) -> Any:
        pool = super().get_connection_with_tls_context(request, verify, None, cert)
        base = HTTPSConnection if isinstance(pool, HTTPSConnectionPool) else HTTPConnection
        pool.ConnectionCls = _guarded(base, self.guard)
        return pool


def _guarded(base: type[HTTPConnection], guard: _Guard) -> type[HTTPConnection]:
    class Guarded(base):  # type: ignore[valid-type,misc]
        def _new_conn(self) -> socket.socket:
            return guard.connect(self.host, self.port, self.socket_options)

    return Guarded


def request(method: str, url: str, *, purpose: Purpose, deadline: float, max_bytes: int,
            headers: Mapping[str, str] | None = None, data: Any = None,
            event_fields: Mapping[str, Any] | None = None) -> Reply:
    """One exchange with ``url`` (see the module's docstring); ``event_fields`` go into the
    refusal event (``client_id``, ``request``...)."""
    watchdog = _Watchdog()
    guard = _Guard(watchdog, time.monotonic() + deadline, app_settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES)
    timer = threading.Timer(deadline, watchdog.fire)
    response: requests.Response | None = None
    with requests.Session() as session:
        session.trust_env = False  # no proxy, no .netrc credentials
        session.mount("http://", _GuardedAdapter(guard))
        session.mount("https://", _GuardedAdapter(guard))
        timer.start()
        try:
            response = session.request(
                method, url, data=data, headers={**(headers or {}), "Accept-Encoding": "identity"},
                timeout=(deadline, deadline), allow_redirects=False, stream=True,
                verify=os.environ.get("REQUESTS_CA_BUNDLE") or True)
            reply = _read(response, max_bytes)
        except (OSError, ValueError, Urllib3Error) as error:  # requests' errors are OSErrors
            raise _failure(error, guard, watchdog, url, purpose, event_fields) from None
        finally:
            timer.cancel()
            watchdog.stand_down()  # before any socket closes
            if response is not None:
                response.close()
    if watchdog.fired:  # a body without a length ends at the shutdown as if complete
        raise TooSlow(f"no complete answer within {deadline} s")
    return reply


def _read(response: requests.Response, max_bytes: int) -> Reply:
    body = bytearray()
    for chunk in response.iter_content(chunk_size=4096):
        body.extend(chunk)
        if len(body) > max_bytes:
            break
    media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return Reply(response.status_code, media_type, bytes(body[:max_bytes]), len(body) > max_bytes)


def _failure(error: Exception, guard: _Guard, watchdog: _Watchdog, url: str, purpose: Purpose,
             event_fields: Mapping[str, Any] | None) -> OutboundError:
    if guard.refused is not None:
        address, reason = guard.refused
        host = urlsplit(url).hostname or ""
        record(EventType.OUTBOUND_DESTINATION_REFUSED, outcome=Outcome.DENIED, reason=reason.value,
               purpose=purpose.value, host=host, address=str(address), **(event_fields or {}))
        return DestinationRefused(f"{host} resolves to {address} ({reason.value})")
    if watchdog.fired or time.monotonic() >= guard.ends_at:
        return TooSlow("no complete answer within the deadline")
    return Unreachable(f"{type(error).__name__}: {str(error)[:300]}")
