"""App Attest receipts and Apple's receipt service ("Assessing fraud risk", Apple Developer
documentation, DeviceCheck > App Attest).

The attestation object carries a receipt (``attStmt.receipt``, type ``ATTEST``). Sending
it to Apple returns a fresh receipt (type ``RECEIPT``) whose field 17 is the *risk
metric*: roughly how many attested keys this device has generated for the app over the
last 30 days. A high value suggests a farm of devices or a compromised app instance.

Wire format (same document): ``POST {base}/v1/attestationData`` with the base64 receipt
as the body and ``Authorization: <JWT>``, the JWT signed ES256 with the team's DeviceCheck
key (header ``kid``; claims ``iss`` = team id, ``iat``). Apple answers 200 with the new
receipt in base64, or 304 when the receipt was refreshed too recently (keep the old one).
Production apps use ``https://data.appattest.apple.com``, development apps
``https://data-development.appattest.apple.com`` (both configurable).

The receipt is a CMS (PKCS #7) SignedData whose content is a SET of
``SEQUENCE { type INTEGER, version INTEGER, value OCTET STRING }`` fields: 2 app id,
3 attested public key, 4 client hash, 5 token, 6 receipt type, 12 creation time,
17 risk metric, 19 not before, 21 expiration time. When roots are configured
(``ATTESTATION_APPLE_RECEIPT_ROOT_CERTS``) the new receipt's CMS signature and certificate
path are verified (``receipt_signature``) before its fields are used.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
from asn1crypto import cms, core
from cryptography import x509
from joserfc import jwt
from joserfc.jwk import ECKey

from attestation.x509chain import load_pem_files

from .receipt_signature import ReceiptSignatureError, verify_receipt_signature
from .settings import health_settings

if TYPE_CHECKING:
    from attestation.models import Device

APP_ID, PUBLIC_KEY, RECEIPT_TYPE, CREATED, RISK_METRIC, NOT_BEFORE, EXPIRES = 2, 3, 6, 12, 17, 19, 21
MAX_RECEIPT = 64 * 1024


class ReceiptError(Exception):
    """A receipt that does not parse, or a receipt-service answer we cannot use."""


class ReceiptField(core.Sequence):
    _fields = [("type", core.Integer), ("version", core.Integer), ("value", core.OctetString)]


class ReceiptFields(core.SetOf):
    _child_spec = ReceiptField


@dataclass(frozen=True)
class Receipt:
    raw: bytes = field(repr=False)
    app_id: str | None
    receipt_type: str | None
    risk_metric: int | None
    created_at: dt.datetime | None
    expires_at: dt.datetime | None


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if value is not None else None


def _number(value: bytes | None) -> int | None:
    """Risk metric: ASCII digits in practice; a DER INTEGER is accepted too."""
    if not value:
        return None
    if value.isdigit():
        return int(value)
    try:
        return int(core.Integer.load(value).native)
    except (ValueError, TypeError) as exc:
        raise ReceiptError("risk metric is not a number") from exc


def _time(value: bytes | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.decode().replace("Z", "+00:00"))
    except (UnicodeDecodeError, ValueError):
        return None


def parse_receipt(der: bytes) -> Receipt:
    """The fields of a receipt (CMS SignedData, DER). Raises ``ReceiptError``."""
    if not der or len(der) > MAX_RECEIPT:
        raise ReceiptError("empty or oversized receipt")
    try:
        info = cms.ContentInfo.load(der)
        content = info["content"]["encap_content_info"]["content"].native
        fields = {int(f["type"].native): f["value"].native for f in ReceiptFields.load(content)}
    except (ValueError, TypeError, KeyError) as exc:
        raise ReceiptError(f"receipt does not parse: {exc}") from exc
    return Receipt(
        raw=der,
        app_id=_text(fields.get(APP_ID)),
        receipt_type=_text(fields.get(RECEIPT_TYPE)),
        risk_metric=_number(fields.get(RISK_METRIC)),
        created_at=_time(fields.get(CREATED)),
        expires_at=_time(fields.get(EXPIRES)),
    )


class ReceiptClient:
    """Apple's receipt service; ``base_url`` defaults by environment (settings)."""

    def __init__(self, *, team_id: str, environment: str = "production", base_url: str | None = None,
                 signing_key_pem: str | None = None, key_id: str | None = None, timeout: float | None = None,
                 roots: list[x509.Certificate] | None = None, session: requests.Session | None = None):
        default = (health_settings.RECEIPT_DEVELOPMENT_BASE_URL if environment == "development"
                   else health_settings.RECEIPT_BASE_URL)
        self.base_url = (base_url or default).rstrip("/")
        self.team_id = team_id
        self.signing_key_pem = signing_key_pem if signing_key_pem is not None else health_settings.RECEIPT_SIGNING_KEY
        self.key_id = key_id if key_id is not None else health_settings.RECEIPT_KEY_ID
        self.timeout = timeout or health_settings.RECEIPT_TIMEOUT
        self.session = session or requests.Session()
        self.roots = roots if roots is not None else load_pem_files(health_settings.RECEIPT_ROOT_CERTS)

    @property
    def configured(self) -> bool:
        return bool(self.signing_key_pem and self.key_id and self.team_id)

    def authorization(self, now: dt.datetime) -> str:
        """The ES256 JWT Apple expects: header ``kid``, claims ``iss`` (team id) and ``iat``."""
        key = ECKey.import_key(self.signing_key_pem)
        header = {"alg": "ES256", "kid": self.key_id}
        return jwt.encode(header, {"iss": self.team_id, "iat": int(now.timestamp())}, key, algorithms=["ES256"])

    def refresh(self, receipt: bytes, *, now: dt.datetime) -> Receipt | None:
        """POST the receipt; the new one, or None on 304 (keep the current receipt).
        Network errors raise ``requests`` exceptions (the Celery task retries them)."""
        response = self.session.post(
            f"{self.base_url}/v1/attestationData",
            data=base64.b64encode(receipt),
            headers={"Authorization": self.authorization(now), "Content-Type": "application/octet-stream"},
            timeout=self.timeout,
        )
        if response.status_code == 304:
            return None
        if response.status_code != 200:
            raise ReceiptError(f"receipt service answered {response.status_code}")
        try:
            der = base64.b64decode(response.content, validate=False)
        except (ValueError, TypeError) as exc:
            raise ReceiptError("receipt service answer is not base64") from exc
        if self.roots:
            try:
                verify_receipt_signature(der, self.roots, now)
            except ReceiptSignatureError as exc:
                raise ReceiptError(str(exc)) from exc
        return parse_receipt(der)


def client_for(device: Device, **overrides: Any) -> ReceiptClient:
    app = device.app
    return ReceiptClient(team_id=app.ios_team_id, environment=app.ios_environment or "production", **overrides)


