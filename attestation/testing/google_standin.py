"""A local stand-in of Google's HTTP APIs for tests, the simulator and demos.

``GoogleStandIn`` is a threaded ``http.server`` on 127.0.0.1 playing the OAuth 2.0 token
URI (JWT-bearer grant, RS256 assertion checked against the service account's key), the
Play Integrity ``decodeIntegrityToken`` API serving recorded verdicts, and the
attestation revocation status list (``GET /attestation/status``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization


@functools.cache
def _service_account_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class GoogleStandIn:
    """A threaded ``http.server`` on 127.0.0.1 playing Google's parts: the OAuth token URI
    (JWT-bearer grant, RS256 assertion checked against the service account's key), the
    Play Integrity ``decodeIntegrityToken`` API serving recorded verdicts, and the
    attestation revocation status list. Use as a context manager."""

    def __init__(self) -> None:
        self.sa_key = _service_account_key()
        self.verdicts: dict[str, dict[str, Any]] = {}
        self.status_list: dict[str, Any] = {"entries": {}}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_with: int | None = None
        self.raw_status_body: bytes | None = None  # served verbatim for the status list (a broken download)
        self.access_tokens: set[str] = set()
        self._server: Any = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def credentials(self) -> dict[str, Any]:
        pem = self.sa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "client_email": "vigil-test@example.iam.gserviceaccount.com",
            "private_key": pem,
            "private_key_id": "test-key-1",
            "token_uri": f"{self.url}/token",
        }

    def record(self, token: str, verdict: dict[str, Any]) -> None:
        self.verdicts[token] = verdict

    def __enter__(self) -> GoogleStandIn:
        import threading
        from http.server import ThreadingHTTPServer

        class Server(ThreadingHTTPServer):
            # http.server listens with a backlog of 5: twenty concurrent refreshes on a loaded
            # host overflowed it and some connections were reset, which is Google being down,
            # not what the tests using this stand-in ask about (they set ``fail_with`` for that).
            request_queue_size = 128

        self._server = Server(("127.0.0.1", 0), _handler_for(self))
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        from urllib.parse import parse_qs

        self.requests.append((method, path, dict(headers)))
        if self.fail_with:
            return self.fail_with, {"error": {"code": self.fail_with, "status": "UNAVAILABLE"}}
        if method == "GET" and path == "/attestation/status":
            return 200, self.status_list if self.raw_status_body is None else self.raw_status_body
        if method == "POST" and path == "/token":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            return self._token(form)
        if method == "POST" and path.startswith("/v1/") and path.endswith(":decodeIntegrityToken"):
            if headers.get("authorization", "").removeprefix("Bearer ") not in self.access_tokens:
                return 401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}}
            request = json.loads(body or b"{}")  # proto3 JSON: both field spellings are accepted
            token = request.get("integrity_token", request.get("integrityToken"))
            verdict = self.verdicts.get(token)
            if verdict is None:
                return 400, {
                    "error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Integrity token cannot be decoded"}
                }
            return 200, {"tokenPayloadExternal": verdict}
        return 404, {"error": {"code": 404}}

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        from joserfc import jwt
        from joserfc.jwk import RSAKey

        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type"}
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                RSAKey.import_key(
                    self.sa_key.public_key().public_bytes(
                        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                    )
                ),
                algorithms=["RS256"],
            ).claims
        except Exception:  # noqa: BLE001 - any bad assertion is invalid_grant, like Google
            return 400, {"error": "invalid_grant"}
        if claims.get("aud") != f"{self.url}/token" or "playintegrity" not in str(claims.get("scope")):
            return 400, {"error": "invalid_grant"}
        token = "ya29.test-" + hashlib.sha256(json.dumps(claims).encode()).hexdigest()[:24]
        self.access_tokens.add(token)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}


def _handler_for(stand_in: GoogleStandIn) -> Any:
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = stand_in.handle(self.command, self.path, headers, body)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
