"""Fetching a request object by reference from a URL the client registered (OIDC Core §6.2,
RFC 9101 §5.2), and nothing else.

Only a ``request_uri`` equal to one in ``Client.request_uris`` (https, registered by an
operator) is fetched, so a request can never make Vigil reach an address of its choosing
(RFC 9101 §10.4.1 server-side request forgery). The fetch follows no redirect, verifies TLS,
gives up after ``DEADLINE`` seconds in all, reads at most ``request_object.MAX_LENGTH``
characters and accepts only ``application/oauth-authz-req+jwt`` (RFC 9101 §10.3) or
``application/jwt``. Every failure is ``invalid_request_uri`` (RFC 9101 §6.3), never a 500.

"In all" is a watchdog's work: ``requests``' timeouts bound each read, so a server that
trickles its TLS handshake, headers or body a byte at a time would otherwise hold the
worker for as long as it likes. When the deadline passes, the watchdog shuts the fetch's
socket down, which ends whatever read is waiting on it.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection

from .request_object import MAX_LENGTH

MEDIA_TYPES = ("application/oauth-authz-req+jwt", "application/jwt")
#: Seconds for the whole fetch (connect, TLS handshake, headers and body).
DEADLINE = 3.0


class FetchFailed(Exception):
    """The registered URL did not give a request object; the message says why."""


def is_registered(request_uri: object, registered: list[str]) -> bool:
    return isinstance(request_uri, str) and request_uri.startswith("https://") and request_uri in registered


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


class _WatchedAdapter(HTTPAdapter):
    """An adapter whose connections hand their socket to ``watchdog`` as soon as it exists."""

    def __init__(self, watchdog: _Watchdog):
        super().__init__(max_retries=0)
        self.watchdog = watchdog

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> Any:
        pool = super().get_connection_with_tls_context(*args, **kwargs)
        watchdog = self.watchdog

        class Watched(HTTPSConnection):
            def _new_conn(self) -> socket.socket:
                sock = super()._new_conn()
                watchdog.watch(sock.fileno())
                return sock

        pool.ConnectionCls = Watched
        return pool


def fetch(request_uri: str) -> str:
    """The request object at a registered https ``request_uri``."""
    watchdog = _Watchdog()
    timer = threading.Timer(DEADLINE, watchdog.fire)
    response: requests.Response | None = None
    with requests.Session() as session:
        session.mount("https://", _WatchedAdapter(watchdog))
        timer.start()
        try:
            response = session.get(request_uri, timeout=(DEADLINE, DEADLINE), allow_redirects=False, stream=True,
                                   headers={"Accept": ", ".join(MEDIA_TYPES)})
            found = _object(response)
        except OSError as error:  # requests' errors are OSErrors, as are the socket's own
            raise FetchFailed("too slow" if watchdog.fired else type(error).__name__) from None
        finally:
            timer.cancel()
            watchdog.stand_down()  # before any socket closes
            if response is not None:
                response.close()
    if watchdog.fired:  # a body without a length ends at the shutdown as if complete
        raise FetchFailed("too slow")
    return found



def _object(response: requests.Response) -> str:
    media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if response.status_code != 200 or media_type not in MEDIA_TYPES:
        raise FetchFailed(f"answered {response.status_code} {media_type or 'without a media type'}")
    content = bytearray()
    for chunk in response.iter_content(chunk_size=4096):
        content.extend(chunk)
        if len(content) > MAX_LENGTH:
            raise FetchFailed("answered more than a request object")
    try:
        return content.decode("ascii").strip()
    except UnicodeDecodeError:
        raise FetchFailed("answered something other than a compact JWS") from None
