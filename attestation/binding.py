"""The canonical request binding every platform attestation signs or hashes.

``client_data`` is the UTF-8 JSON object below, keys sorted, no whitespace
(``json.dumps(..., sort_keys=True, separators=(",", ":"))``):

    {"challenge": <server challenge, as issued>,
     "client_id": <OAuth client_id>,
     "dpop_jkt": <RFC 7638 thumbprint of the DPoP key, or "">,
     "grant": <"authorization_code" | "refresh_token">,
     "grant_hash": <base64url(SHA-256(code or refresh token)), no padding>,
     "signals": <object of self-reported device signals, or {}>}

plus, only when the request carries an Apple DeviceCheck token (``devicecheck_token``),
``"devicecheck": base64url(SHA-256(the token as sent, UTF-8)), no padding``: the token is
then covered by the App Attest attestation and cannot be swapped on the network. Without a
token the member is absent, so the bytes are exactly those above.

``client_data_hash = SHA-256(client_data)`` is what App Attest attests/asserts over,
what an Android attested key signs (ECDSA-SHA256 over ``client_data``) and, base64url
encoded, the Play Integrity ``requestHash`` (standard) or ``nonce`` (classic).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from core.encoding import b64url_encode


def grant_hash(secret: str) -> str:
    return b64url_encode(hashlib.sha256(secret.encode()).digest())


def devicecheck_hash(token: str) -> str:
    """The binding's ``devicecheck`` member for a DeviceCheck token; "" for no token."""
    return b64url_encode(hashlib.sha256(token.encode()).digest()) if token else ""


@dataclass(frozen=True)
class RequestBinding:
    challenge: str
    client_id: str
    grant: str
    grant_hash: str
    dpop_jkt: str = ""
    signals: dict[str, Any] = field(default_factory=dict)
    devicecheck: str = ""  # devicecheck_hash(token), or "" (member absent)

    def client_data(self) -> bytes:
        payload: dict[str, Any] = {
            "challenge": self.challenge,
            "client_id": self.client_id,
            "dpop_jkt": self.dpop_jkt,
            "grant": self.grant,
            "grant_hash": self.grant_hash,
            "signals": self.signals,
        }
        if self.devicecheck:
            payload["devicecheck"] = self.devicecheck
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()

    def client_data_hash(self) -> bytes:
        return hashlib.sha256(self.client_data()).digest()

    def request_hash(self) -> str:
        """The Play Integrity ``requestHash``/``nonce`` value for this binding."""
        return b64url_encode(self.client_data_hash())
