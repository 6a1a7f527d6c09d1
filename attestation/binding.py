"""The canonical request binding every platform attestation signs or hashes.

``client_data`` is the UTF-8 JSON object below, keys sorted, no whitespace
(``json.dumps(..., sort_keys=True, separators=(",", ":"))``):

    {"challenge": <server challenge, as issued>,
     "client_id": <OAuth client_id>,
     "dpop_jkt": <RFC 7638 thumbprint of the DPoP key, or "">,
     "grant": <"authorization_code" | "refresh_token">,
     "grant_hash": <base64url(SHA-256(code or refresh token)), no padding>,
     "signals": <object of self-reported device signals, or {}>}

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


@dataclass(frozen=True)
class RequestBinding:
    challenge: str
    client_id: str
    grant: str
    grant_hash: str
    dpop_jkt: str = ""
    signals: dict[str, Any] = field(default_factory=dict)

    def client_data(self) -> bytes:
        payload = {
            "challenge": self.challenge,
            "client_id": self.client_id,
            "dpop_jkt": self.dpop_jkt,
            "grant": self.grant,
            "grant_hash": self.grant_hash,
            "signals": self.signals,
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()

    def client_data_hash(self) -> bytes:
        return hashlib.sha256(self.client_data()).digest()

    def request_hash(self) -> str:
        """The Play Integrity ``requestHash``/``nonce`` value for this binding."""
        return b64url_encode(self.client_data_hash())
