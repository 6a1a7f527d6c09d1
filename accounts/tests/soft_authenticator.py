"""A software WebAuthn authenticator for tests: one P-256 credential that answers the
creation and request options the server hands out (WebAuthn L3 §6.1 authenticator data,
§8.7 ``none`` attestation, §6.3.3 assertion signature over ``authData || SHA-256(clientDataJSON)``).

Its signature counter stays 0, as synced passkeys report it (§6.1.1): no counter can refuse an
assertion sent twice, so only the single use of the challenge does.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from core.encoding import b64url_decode, b64url_encode

UP_UV = 0x05  # user present, user verified
ATTESTED = 0x40  # attested credential data included


class SoftAuthenticator:
    def __init__(self, rp_id: str, origin: str) -> None:
        self.rp_id, self.origin = rp_id, origin
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(16)
        self.user_handle = ""  # learnt from the creation options

    def _client_data(self, kind: str, options: dict[str, Any]) -> bytes:
        return json.dumps({"type": kind, "challenge": options["challenge"], "origin": self.origin}).encode()

    def _auth_data(self, flags: int, extra: bytes = b"") -> bytes:
        return hashlib.sha256(self.rp_id.encode()).digest() + bytes([flags]) + (0).to_bytes(4, "big") + extra

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        """The ``create()`` response to ``options`` (PublicKeyCredentialCreationOptions JSON)."""
        self.user_handle = options["user"]["id"]
        numbers = self.key.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        attested = bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id + cose
        auth_data = self._auth_data(UP_UV | ATTESTED, attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return self._credential({"clientDataJSON": b64url_encode(self._client_data("webauthn.create", options)),
                                 "attestationObject": b64url_encode(attestation)})

    def get(self, options: dict[str, Any]) -> dict[str, Any]:
        """The ``get()`` response to ``options`` (PublicKeyCredentialRequestOptions JSON)."""
        client_data = self._client_data("webauthn.get", options)
        auth_data = self._auth_data(UP_UV)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return self._credential({"clientDataJSON": b64url_encode(client_data),
                                 "authenticatorData": b64url_encode(auth_data),
                                 "signature": b64url_encode(signature),
                                 "userHandle": self.user_handle})

    def _credential(self, response: dict[str, Any]) -> dict[str, Any]:
        raw_id = b64url_encode(self.credential_id)
        return {"id": raw_id, "rawId": raw_id, "type": "public-key", "response": response}


def challenge_of(credential: dict[str, Any]) -> str:
    """The challenge a response answers (its clientDataJSON's)."""
    return str(json.loads(b64url_decode(credential["response"]["clientDataJSON"]))["challenge"])
