"""A relying party's back-channel logout endpoint for tests: a threaded ``http.server`` on
127.0.0.1 that answers with scripted statuses and validates each logout token the way
OpenID Connect Back-Channel Logout 1.0 §2.6 says, with a third-party JOSE library (PyJWT)
against the provider's published JWKS."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs

import jwt as pyjwt

EVENT = "http://schemas.openid.net/event/backchannel-logout"


def validate_logout_token(token: str, *, jwks_url: str, issuer: str, audience: str) -> dict[str, Any]:
    """§2.6: signature by the OP's key (explicit algorithms), iss, aud, iat, typ, the events
    member with the back-channel logout event, sub or sid, and no nonce."""
    header = pyjwt.get_unverified_header(token)
    if header.get("typ") != "logout+jwt":
        raise ValueError(f"typ {header.get('typ')!r}")
    key = pyjwt.PyJWKClient(jwks_url, cache_keys=False).get_signing_key_from_jwt(token)
    claims = pyjwt.decode(token, key.key, algorithms=["RS256", "ES256", "EdDSA"], audience=audience, issuer=issuer,
                          options={"require": ["iat", "exp", "jti", "events"]})
    if not isinstance(claims["events"], dict) or claims["events"].get(EVENT) != {}:
        raise ValueError("no back-channel logout event")
    if "nonce" in claims or not (claims.get("sub") or claims.get("sid")):
        raise ValueError("nonce present, or neither sub nor sid")
    return claims


@dataclass
class Received:
    status: int
    content_type: str
    claims: dict[str, Any] | None
    error: str = ""


@dataclass
class _State:
    statuses: list[int]
    verify: Any
    received: list[Received] = field(default_factory=list)


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            status = state.statuses.pop(0) if len(state.statuses) > 1 else state.statuses[0]
            claims, error = None, ""
            if status == 200:
                try:
                    claims = state.verify(parse_qs(body)["logout_token"][0])
                except Exception as exc:  # §2.8: a token that fails validation is answered 400
                    status, error = 400, f"{type(exc).__name__}: {exc}"
            state.received.append(Received(status, self.headers.get("Content-Type", ""), claims, error))
            self.send_response(status)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


class LogoutReceiver:
    """``statuses`` are answered in order (the last repeats); 200 only when the token validates."""

    def __init__(self, verify: Any, statuses: list[int] | None = None):
        self.state = _State(statuses=list(statuses or [200]), verify=verify)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/backchannel-logout"

    @property
    def received(self) -> list[Received]:
        return self.state.received

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.state.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.state.received

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
