"""A local stand-in of Google's HTTP APIs for tests, the simulator and demos.

``GoogleStandIn`` is a threaded ``http.server`` on 127.0.0.1 playing the OAuth 2.0 token
URI (JWT-bearer grant, RS256 assertion checked against the service account's key), the
Play Integrity ``decodeIntegrityToken`` API serving recorded verdicts, and the
attestation revocation status list (``GET /attestation/status``). Its refusals are
``DecodeError``: Google's error bodies as Google sends them (``google.rpc.Status`` in JSON
with the v1 format's ``errors`` list; the sources are in ``attestation/android/google_errors.py``).
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization


@functools.cache
def _service_account_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


PROJECT = "123456789012"
SERVICE = "playintegrity.googleapis.com"


def _status(code: int, status: str, message: str, reason: str = "", domain: str = "global", *details: Any) -> Any:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason:
        error["errors"] = [{"message": message, "domain": domain, "reason": reason}]
    if details:
        error["details"] = list(details)
    return {"error": error}


def _info(reason: str, domain: str = "googleapis.com", **metadata: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": domain,
            "metadata": {"consumer": f"projects/{PROJECT}", "service": SERVICE, **metadata}}


_DISABLED = (f"Google Play Integrity API has not been used in project {PROJECT} before or it is disabled. Enable it "
             f"by visiting https://console.developers.google.com/apis/api/{SERVICE}/overview?project={PROJECT} then "
             "retry. If you enabled this API recently, wait a few minutes for the action to propagate to our systems "
             "and retry.")
# Google's wording for these two; the quota metric and limit names are illustrative.
_QUOTA = (f"Quota exceeded for quota metric 'Integrity token decode requests' and limit 'Requests per day' of "
          f"service '{SERVICE}' for consumer 'project_number:{PROJECT}'.")


class DecodeError(enum.Enum):
    """What ``decodeIntegrityToken`` answers when it does not decode: (HTTP status, body)."""

    # the token the device sent
    INVALID_TOKEN = (400, _status(400, "INVALID_ARGUMENT", "Integrity token cannot be decoded due to invalid "
                                  "arguments.", "badRequest"))
    FOREIGN_TOKEN = (403, _status(403, "PERMISSION_DENIED", "You are not authorized to decode the requested "
                                  "integrity token.", "forbidden"))
    UNTRUSTED_PACKAGE = (403, _status(403, "PERMISSION_DENIED", "Application package name (com.example.other) "
                                      "provided by un-trusted source.", "forbidden"))
    # the registration or the deployment
    APP_NOT_FOUND = (400, _status(400, "INVALID_ARGUMENT", "App is not found.", "badRequest"))
    SERVICE_DISABLED = (403, _status(403, "PERMISSION_DENIED", _DISABLED, "accessNotConfigured", "usageLimits",
                                     _info("SERVICE_DISABLED")))
    API_NOT_CONFIGURED = (403, _status(403, "PERMISSION_DENIED", _DISABLED, "accessNotConfigured", "usageLimits"))
    BILLING_DISABLED = (403, _status(403, "PERMISSION_DENIED", f"This API method requires billing to be enabled. "
                                     f"Please enable billing on project #{PROJECT} then retry.", "", "global",
                                     _info("BILLING_DISABLED")))
    # IAM's shape (google-gemini/gemini-cli#10440); the permission named here is illustrative
    IAM_PERMISSION_DENIED = (403, _status(
        403, "PERMISSION_DENIED", f"Permission 'playintegrity.tokens.decode' denied on resource "
        f"'//{SERVICE}/projects/{PROJECT}' (or it may not exist).", "forbidden", "global",
        _info("IAM_PERMISSION_DENIED", SERVICE, permission="playintegrity.tokens.decode")))
    CALLER_LACKS_PERMISSION = (403, _status(403, "PERMISSION_DENIED", "The caller does not have permission",
                                            "forbidden"))
    SCOPE_INSUFFICIENT = (403, _status(403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.",
                                       "insufficientPermissions", "global",
                                       _info("ACCESS_TOKEN_SCOPE_INSUFFICIENT")))
    UNAUTHENTICATED = (401, _status(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. "
                                    "Expected OAuth 2 access token, login cookie or other valid authentication "
                                    "credential.", "authError"))
    NOT_FOUND = (404, b"<!DOCTYPE html><title>Error 404 (Not Found)!!1</title><p><b>404.</b> That's an error.")
    PROXY_FORBIDDEN = (403, b"<html><body><h1>403 Forbidden</h1>Request blocked by policy.</body></html>")
    # Google
    QUOTA = (429, _status(429, "RESOURCE_EXHAUSTED", _QUOTA, "rateLimitExceeded", "global",
                          _info("RATE_LIMIT_EXCEEDED", quota_limit="DailyRequestsPerProject")))
    INTERNAL = (500, _status(500, "INTERNAL", "Internal error encountered.", "backendError"))
    UNAVAILABLE = (503, _status(503, "UNAVAILABLE", "The service is currently unavailable.", "backendError"))

    @property
    def status(self) -> int:
        return int(self.value[0])

    @property
    def body(self) -> Any:
        return self.value[1]


_BY_STATUS = {429: DecodeError.QUOTA, 500: DecodeError.INTERNAL, 503: DecodeError.UNAVAILABLE}


class GoogleStandIn:
    """A threaded ``http.server`` on 127.0.0.1 playing Google's parts: the OAuth token URI
    (JWT-bearer grant, RS256 assertion checked against the service account's key), the
    Play Integrity ``decodeIntegrityToken`` API serving recorded verdicts, and the
    attestation revocation status list. Use as a context manager."""

    def __init__(self) -> None:
        self.sa_key = _service_account_key()
        self.verdicts: dict[str, dict[str, Any]] = {}
        self.status_list: dict[str, Any] = {"entries": {}}
        self.refusals: dict[str, DecodeError] = {}  # what Google answers for these tokens
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_with: int | DecodeError | None = None  # every call answers it (Google down)
        self.decode_fails_with: DecodeError | None = None  # every decode answers it (our configuration)
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

    def refuse(self, token: str, error: DecodeError = DecodeError.FOREIGN_TOKEN) -> str:
        """Google's answer to ``token``: by default one minted for another Cloud project."""
        self.refusals[token] = error
        return token

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
            return self._failure(self.fail_with)
        if method == "GET" and path == "/attestation/status":
            return 200, self.status_list if self.raw_status_body is None else self.raw_status_body
        if method == "POST" and path == "/token":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            return self._token(form)
        if method == "POST" and path.startswith("/v1/") and path.endswith(":decodeIntegrityToken"):
            if headers.get("authorization", "").removeprefix("Bearer ") not in self.access_tokens:
                return self._failure(DecodeError.UNAUTHENTICATED)
            request = json.loads(body or b"{}")  # proto3 JSON: both field spellings are accepted
            token = request.get("integrity_token", request.get("integrityToken"))
            verdict = self.verdicts.get(token)
            if self.decode_fails_with or token in self.refusals or verdict is None:
                return self._failure(self.decode_fails_with or self.refusals.get(token, DecodeError.INVALID_TOKEN))
            return 200, {"tokenPayloadExternal": verdict}
        return self._failure(DecodeError.NOT_FOUND)

    @staticmethod
    def _failure(error: int | DecodeError) -> tuple[int, Any]:
        """A ``DecodeError``, or an HTTP status answered with Google's body for it."""
        if isinstance(error, int) and error not in _BY_STATUS:
            return error, _status(error, "UNAVAILABLE", "The service is currently unavailable.")
        answer = _BY_STATUS[error] if isinstance(error, int) else error
        return answer.status, answer.body

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
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
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
