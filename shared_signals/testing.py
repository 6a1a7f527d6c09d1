"""Loopback test doubles for Shared Signals (tests only; nothing here runs in production).

``LoopbackReceiver``: a threaded ``http.server`` on 127.0.0.1 that answers pushes with
scripted statuses and verifies each SET with a caller-supplied function.
``LoopbackTransmitter``: its own EC key, a JWKS served on 127.0.0.1, SETs signed with
that key and pushed with ``requests``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import requests
from joserfc import jwt
from joserfc.jwk import ECKey

from core.crypto import generate_token


@dataclass
class Pushed:
    headers: dict[str, str]
    body: bytes
    status: int
    claims: dict[str, Any] | None = None


@dataclass
class _State:
    statuses: list[int]
    verify: Callable[[str], dict[str, Any]] | None
    pushes: list[Pushed] = field(default_factory=list)
    jwks: dict[str, Any] | None = None


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, body: dict[str, Any] | None = None) -> None:
            payload = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self.path == "/jwks.json" and state.jwks is not None:
                self._send(200, state.jwks)
            else:
                self._send(404, {})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = state.statuses.pop(0) if len(state.statuses) > 1 else (state.statuses or [202])[0]
            claims, error = None, None
            if status == 202 and state.verify is not None:
                try:
                    claims = state.verify(body.decode())
                except Exception as exc:  # the double reports any verification failure as RFC 8935 §2.3
                    status, error = 400, {"err": "invalid_key", "description": str(exc)[:200]}
            state.pushes.append(Pushed(dict(self.headers.items()), body, status, claims))
            if status >= 400:
                self._send(status, error or {"err": "invalid_request", "description": "scripted"})
            else:
                self._send(status)

    return Handler


class _Loopback:
    def __init__(self, state: _State):
        self.state = state
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class LoopbackReceiver(_Loopback):
    """Receives pushed SETs at ``/events``; ``statuses`` are answered in order (the last repeats)."""

    def __init__(self, statuses: list[int] | None = None, verify: Callable[[str], dict[str, Any]] | None = None):
        super().__init__(_State(statuses=list(statuses or [202]), verify=verify))

    @property
    def endpoint(self) -> str:
        return f"{self.url}/events"

    @property
    def pushes(self) -> list[Pushed]:
        return self.state.pushes

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Pushed]:
        deadline = time.monotonic() + timeout
        while len(self.state.pushes) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.state.pushes


class LoopbackTransmitter(_Loopback):
    """A transmitter with its own key, its JWKS at ``/jwks.json`` on loopback."""

    def __init__(self, issuer: str = "https://mdm.example.test"):
        self.issuer = issuer
        self.key = ECKey.generate_key("P-256", private=True)
        self.kid = self.key.thumbprint()
        public = self.key.as_dict(private=False)
        public.update({"kid": self.kid, "alg": "ES256", "use": "sig"})
        super().__init__(_State(statuses=[202], verify=None, jwks={"keys": [public]}))

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/jwks.json"

    @property
    def jwks(self) -> dict[str, Any]:
        return dict(self.state.jwks or {})

    def claims(self, audience: str, event_type: str, sub_id: dict[str, Any], event: dict[str, Any] | None = None,
               **overrides: Any) -> dict[str, Any]:
        claims = {"iss": self.issuer, "jti": generate_token(16), "iat": int(time.time()), "aud": audience,
                  "sub_id": sub_id, "events": {event_type: event or {}}}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], *, key: ECKey | None = None, typ: str = "secevent+jwt",
             kid: str | None = None) -> str:
        header = {"alg": "ES256", "typ": typ, "kid": kid or self.kid}
        return jwt.encode(header, claims, key or self.key, algorithms=["ES256"])

    @staticmethod
    def push(url: str, token: str, **headers: str) -> requests.Response:
        return requests.post(url, data=token.encode(), timeout=10,
                             headers={"Content-Type": "application/secevent+jwt", **headers})
