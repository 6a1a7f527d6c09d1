"""Test helpers of device health: App Attest receipts in Apple's layout and a local stand-in
of Apple's receipt service on 127.0.0.1 that serves recorded receipts.

Never used by the server itself; tests and the docs' examples import it.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from .receipts import APP_ID, CREATED, EXPIRES, NOT_BEFORE, RECEIPT_TYPE, RISK_METRIC, ReceiptField, ReceiptFields


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@functools.cache
def _root() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A test stand-in for Apple Root CA - G3 (trusted only where a test configures it)."""
    key = ec.generate_private_key(ec.SECP384R1())
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("Vigil Test Receipt Root CA")).issuer_name(
        _name("Vigil Test Receipt Root CA")).public_key(key.public_key()).serial_number(1)
        .not_valid_before(start).not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .sign(key, hashes.SHA384()))
    return cert, key


@functools.cache
def _signer() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    root, root_key = _root()
    key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("Vigil Test Receipt Signing")).issuer_name(root.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256()))
    return cert, key


def receipt_root_pem() -> bytes:
    """The test receipt root, PEM (write it to a file named by ``ATTESTATION_APPLE_RECEIPT_ROOT_CERTS``)."""
    return _root()[0].public_bytes(serialization.Encoding.PEM)


def make_receipt(app_id: str, *, receipt_type: str = "RECEIPT", risk_metric: int | None = 1,
                 created: dt.datetime | None = None) -> bytes:
    """A receipt with Apple's structure: CMS SignedData over a SET of typed fields."""
    created = created or dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    values = {
        APP_ID: app_id.encode(),
        RECEIPT_TYPE: receipt_type.encode(),
        CREATED: created.isoformat().replace("+00:00", "Z").encode(),
        NOT_BEFORE: (created + dt.timedelta(days=1)).isoformat().replace("+00:00", "Z").encode(),
        EXPIRES: (created + dt.timedelta(days=90)).isoformat().replace("+00:00", "Z").encode(),
    }
    if risk_metric is not None:
        values[RISK_METRIC] = str(risk_metric).encode()
    fields = ReceiptFields([ReceiptField({"type": t, "version": 1, "value": v}) for t, v in sorted(values.items())])
    cert, key = _signer()
    return pkcs7.PKCS7SignatureBuilder().set_data(fields.dump()).add_signer(cert, key, hashes.SHA256()).sign(
        serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]
    )


def devicecheck_key_pem() -> str:
    """A fresh DeviceCheck-style private key (EC P-256, PKCS#8 PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class AppleReceiptStandIn:
    """``POST /v1/attestationData`` as Apple serves it: checks the ES256 JWT (``kid``, ``iss``),
    answers the recorded new receipt for a known receipt (base64 body), 304 for receipts in
    ``not_modified``, 400 otherwise. Use as a context manager."""

    def __init__(self, *, team_id: str, key_pem: str, key_id: str = "TESTKEY123"):
        self.team_id, self.key_id = team_id, key_id
        self.public_key = ECKey.import_key(key_pem).as_dict(private=False)
        self.recorded: dict[bytes, bytes] = {}
        self.not_modified: set[bytes] = set()
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None

    def record(self, sent: bytes, answer: bytes) -> None:
        self.recorded[sent] = answer

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _authorized(self, header: str) -> bool:
        try:
            token = jwt.decode(header, ECKey.import_key(self.public_key), algorithms=["ES256"])
        except (JoseError, ValueError):
            return False
        return token.header.get("kid") == self.key_id and token.claims.get("iss") == self.team_id

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stand_in.requests.append({"path": self.path, "authorization": self.headers.get("Authorization")})
                if (self.path != "/v1/attestationData"
                        or not stand_in._authorized(self.headers.get("Authorization", ""))):
                    return self._send(401, b"")
                sent = base64.b64decode(body)
                if sent in stand_in.not_modified:
                    return self._send(304, b"")
                answer = stand_in.recorded.get(sent)
                return self._send(200, base64.b64encode(answer)) if answer else self._send(400, b"")

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

        return Handler

    def __enter__(self) -> AppleReceiptStandIn:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
