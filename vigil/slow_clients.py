"""A deadline for request bodies when gunicorn faces clients without a buffering proxy.

``gunicorn.conf.py`` serves this ``application``: it reads a request's announced body
(``Content-Length``) in full, within ``VIGIL_BODY_TIMEOUT`` seconds in total, before Django
sees the request. A client that sends its body more slowly is answered ``408 Request
Timeout`` (RFC 9110 §15.5.9), its connection is shut for reading (so nothing waits for the
rest of the body) and it holds a thread for that long at most, instead of until it gives up;
Django never meets a half-read body (which it would turn into an error page). Behind nginx
(``proxy_request_buffering on``) bodies arrive at once and this costs nothing.

It needs gunicorn's socket (``environ["gunicorn.socket"]``) to bound each read; elsewhere
(runserver, tests) and for bodies without a length or above ``MAX_BUFFERED`` the request
passes through untouched.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from .wsgi import application as django_application

logger = logging.getLogger("vigil.slow_clients")

MAX_BUFFERED = 10 * 1024 * 1024
CHUNK = 64 * 1024
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BodyTooSlow(Exception):
    pass


def body_timeout() -> float:
    return float(os.environ.get("VIGIL_BODY_TIMEOUT", "10"))


def read_body(stream: Any, sock: Any, length: int, timeout: float) -> bytes:
    """``length`` bytes from ``stream`` within ``timeout`` seconds in total, or ``BodyTooSlow``."""
    deadline = time.monotonic() + timeout
    parts: list[bytes] = []
    received = 0
    try:
        while received < length:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BodyTooSlow(f"{received} of {length} bytes in {timeout} s")
            sock.settimeout(remaining)
            chunk = stream.read(min(CHUNK, length - received))
            if not chunk:
                break  # the client hung up: Django sees a short body, as it would anyway
            parts.append(chunk)
            received += len(chunk)
    except OSError as error:  # socket.timeout included
        raise BodyTooSlow(f"{received} of {length} bytes: {error}") from error
    finally:
        sock.settimeout(None)
    return b"".join(parts)


def _stop_reading(sock: Any) -> None:
    """No more of this body is wanted: gunicorn's drain of it then ends at once, and the
    connection closes after the 408 instead of waiting for the next request."""
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass


def _length(environ: dict[str, Any]) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def with_body_deadline(app: WSGIApp) -> WSGIApp:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sock, length = environ.get("gunicorn.socket"), _length(environ)
        if sock is None or not 0 < length <= MAX_BUFFERED:
            return app(environ, start_response)
        try:
            body = read_body(environ["wsgi.input"], sock, length, body_timeout())
        except BodyTooSlow as slow:
            logger.warning("request body too slow from %s: %s", environ.get("REMOTE_ADDR"), slow)
            _stop_reading(sock)
            start_response("408 Request Timeout", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"The request body did not arrive in time.\n"]
        environ["wsgi.input"] = io.BytesIO(body)
        return app(environ, start_response)

    return wrapped


application = with_body_deadline(django_application)
