"""A local stand-in of Apple's DeviceCheck server API on 127.0.0.1, for tests, the simulator
and the development demo (``make up``). Never used by the server itself: the server only
ever talks to the base URL its settings name.

It behaves as "Accessing and modifying per-device data" describes: ``POST
/v1/validate_device_token``, ``/v1/query_two_bits`` and ``/v1/update_two_bits`` with a JSON
body ``{device_token, transaction_id, timestamp[, bit0, bit1]}`` and ``Authorization: Bearer
<ES256 JWT>`` (``kid``, ``iss`` = team id, ``iat`` within the last hour), checked against the
team key's public half. Device tokens are the ones ``mint_device_token`` issues for a
simulated physical device (HMAC under a test key, like the test PKI the simulator attests
with): each call maps a token to its device, whose two bits and ``last_update_time``
(YYYY-MM) are kept per team. Answers: 200 (``Bit State Not Found`` when the bits were never
set), 400 ``Missing or incorrectly formatted device token payload``, 400 for bad bits or
payload, 401 ``Unable to verify authorization token``.

``fail(...)`` makes it answer badly (a status, ``timeout``, ``garbage``, ``huge``,
``redirect``) until ``recover()``. Run alone: ``python -m attestation.testing.devicecheck_standin
--port 8101 --team-id ABCDE12345 --key-file var/devicecheck-dev.p8 --key-id DEVSTANDIN``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

TOKEN_KEY = b"vigil-devicecheck-standin-test-key"  # test only: anyone can mint tokens with it
TOKEN_PREFIX = b"VDC1"
BAD_TOKEN = "Missing or incorrectly formatted device token payload"
BAD_AUTH = "Unable to verify authorization token"
JWT_MAX_AGE = 3600


def new_team_key_pem() -> str:
    """A fresh DeviceCheck-style team key (EC P-256, PKCS#8 PEM, as Apple's ``.p8`` file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def mint_device_token(device_id: str) -> str:
    """``DCDevice.generateToken`` for the simulated physical device ``device_id``: a fresh
    (ephemeral) token each call, all mapping to the same device."""
    payload = json.dumps({"device": device_id, "nonce": secrets.token_hex(8)}).encode()
    mac = hmac.new(TOKEN_KEY, TOKEN_PREFIX + payload, hashlib.sha256).digest()
    return base64.b64encode(TOKEN_PREFIX + payload + mac).decode()


def device_of(token: Any) -> str | None:
    """The device a token was minted for, or None when it is not one of ours."""
    if not isinstance(token, str):
        return None
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return None
    body, mac = raw[:-32], raw[-32:]
    if not body.startswith(TOKEN_PREFIX) or not hmac.compare_digest(
        mac, hmac.new(TOKEN_KEY, body, hashlib.sha256).digest()
    ):
        return None
    try:
        device = json.loads(body[len(TOKEN_PREFIX):]).get("device")
    except (ValueError, AttributeError):
        return None
    return device if isinstance(device, str) else None


class DeviceCheckStandIn:
    """Apple's DeviceCheck API for one team key. Use as a context manager (or ``start``/``stop``)."""

    def __init__(self, *, team_id: str, key_pem: str, key_id: str = "DCKEY12345", port: int = 0):
        self.team_id, self.key_id, self.port = team_id, key_id, port
        self.public_key = ECKey.import_key(key_pem).as_dict(private=False)
        self.bits: dict[tuple[str, str], dict[str, Any]] = {}  # (team, device) -> bit0, bit1, last_update_time
        self.requests: list[dict[str, Any]] = []
        self.failure: int | str | None = None
        self.delay = 0.0  # seconds before answering ("timeout")
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ control
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, how: int | str, *, delay: float = 2.0) -> None:
        """Answer every request badly: an HTTP status, ``timeout`` (wait ``delay`` s), ``garbage``
        (200 that is not JSON), ``huge`` (200 of 1 MiB) or ``redirect`` (302 elsewhere)."""
        self.failure, self.delay = how, (delay if how == "timeout" else 0.0)

    def recover(self) -> None:
        self.failure, self.delay = None, 0.0

    def set_bits(self, device_id: str, *, bit0: bool | None = None, bit1: bool | None = None,
                 month: str = "2026-12") -> None:
        with self._lock:
            state = self.bits.setdefault((self.team_id, device_id), {"bit0": False, "bit1": False})
            state.update({k: v for k, v in (("bit0", bit0), ("bit1", bit1)) if v is not None})
            state["last_update_time"] = month

    def state_of(self, device_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self.bits.get((self.team_id, device_id))
            return dict(found) if found else None

    # ------------------------------------------------------------------ Apple's behaviour
    def _authorized(self, header: str) -> bool:
        if not header.startswith("Bearer "):
            return False
        try:
            token = jwt.decode(header[7:], ECKey.import_key(self.public_key), algorithms=["ES256"])
        except (JoseError, ValueError):
            return False
        iat = token.claims.get("iat")
        fresh = isinstance(iat, int) and abs(time.time() - iat) <= JWT_MAX_AGE
        return token.header.get("kid") == self.key_id and token.claims.get("iss") == self.team_id and fresh

    def answer(self, path: str, authorization: str, raw: bytes) -> tuple[int, bytes]:
        """Apple's answer to one request (status, body)."""
        if not self._authorized(authorization):
            return 401, BAD_AUTH.encode()
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, b"Missing or incorrectly formatted payload"
        if not isinstance(body, dict) or not isinstance(body.get("transaction_id"), str) or not isinstance(
            body.get("timestamp"), int
        ):
            return 400, b"Missing or incorrectly formatted payload"
        device = device_of(body.get("device_token"))
        if device is None:
            return 400, BAD_TOKEN.encode()
        if path == "/v1/validate_device_token":
            return 200, b""
        if path == "/v1/query_two_bits":
            state = self.state_of(device)
            return (200, json.dumps(state).encode()) if state else (200, b"Bit State Not Found")
        if path == "/v1/update_two_bits":
            return self._update(device, body)
        return 404, b""

    def _update(self, device: str, body: dict[str, Any]) -> tuple[int, bytes]:
        bits = {k: body[k] for k in ("bit0", "bit1") if k in body}
        if not bits or not all(isinstance(v, bool) for v in bits.values()):
            return 400, b"Missing or incorrectly formatted bits"
        self.set_bits(device, month=dt.datetime.now(dt.UTC).strftime("%Y-%m"), **bits)
        return 200, b""

    def _failure(self) -> tuple[int, bytes, dict[str, str]] | None:
        how = self.failure
        if how is None:
            return None
        if how == "timeout":
            time.sleep(self.delay)
            return 200, b"Bit State Not Found", {}
        if how == "garbage":
            return 200, b"<html>not json", {}
        if how == "huge":
            return 200, b"x" * (1024 * 1024), {}
        if how == "redirect":
            return 302, b"", {"Location": "http://127.0.0.1:9/elsewhere"}
        return int(how), b"Service unavailable", {}

    # ------------------------------------------------------------------ HTTP
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                raw = self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 65536))
                auth = self.headers.get("Authorization", "")
                stand_in.requests.append({"path": self.path, "authorization": auth, "body": raw})
                failed = stand_in._failure()
                if failed is not None:
                    return self._send(*failed)
                status, payload = stand_in.answer(self.path, auth, raw)
                return self._send(status, payload, {})

            def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    try:
                        self.wfile.write(payload)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up (timeout, size bound)

        return Handler

    def start(self) -> DeviceCheckStandIn:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> DeviceCheckStandIn:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve the stand-in in the foreground (the development demo's Apple)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--team-id", required=True)
    parser.add_argument("--key-file", required=True, help="PEM of the DeviceCheck private key the server signs with")
    parser.add_argument("--key-id", default="DEVSTANDIN")
    args = parser.parse_args(argv)
    with open(args.key_file) as handle:
        stand_in = DeviceCheckStandIn(team_id=args.team_id, key_pem=handle.read(), key_id=args.key_id, port=args.port)
    stand_in.start()
    print(f"DeviceCheck stand-in on {stand_in.url} for team {args.team_id}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stand_in.stop()


if __name__ == "__main__":
    main()
