"""An iOS App Attest device simulator that speaks Vigil's wire format.

It plays both DCAppAttestService (a P-256 key in the "Secure Enclave", attestation by
the test PKI in ``attestation/testing/apple_pki.py``, assertions with a counter) and the
app (builds the token-request form parameters of ``docs/attestation.md``). Every step
can be overridden to forge an attack in tests.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.apple.certs import key_id_of
from attestation.binding import RequestBinding
from attestation.testing import apple_pki
from attestation.testing.devicecheck_standin import mint_device_token
from core.encoding import b64url_encode


@dataclass
class IOSDevice:
    """One App Attest key of one app instance (``DCAppAttestService.generateKey``) on one
    physical device (``physical_id``: what Apple's DeviceCheck recognises across reinstalls)."""

    app_id: str
    environment: str = "production"
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    counter: int = 0
    issuer: apple_pki.CA | None = None
    receipt: bytes = b"vigil-test-receipt"
    physical_id: str = field(default_factory=lambda: secrets.token_hex(8))
    devicecheck: bool = False  # the app sends a DeviceCheck token with its enrollment

    def reinstall(self) -> IOSDevice:
        """The app deleted and installed again on the same phone: a new App Attest key, the same device."""
        return IOSDevice(self.app_id, self.environment, issuer=self.issuer, receipt=self.receipt,
                         physical_id=self.physical_id, devicecheck=self.devicecheck)

    def devicecheck_token(self) -> str:
        """``DCDevice.current.generateToken``: an ephemeral token Apple (the stand-in) maps to this phone."""
        return mint_device_token(self.physical_id)

    @property
    def key_id(self) -> bytes:
        return key_id_of(self.key.public_key())

    @property
    def key_id_b64(self) -> str:
        return base64.b64encode(self.key_id).decode()

    @property
    def public_key_pem(self) -> str:
        pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode()

    # ------------------------------------------------------------------ attestation
    def attest(self, client_data_hash: bytes, *, now: datetime | None = None, **forge: Any) -> bytes:
        """``attestKey(keyId, clientDataHash)``. ``forge`` overrides: app_id, counter, aaguid,
        credential_id, flags, trailing, nonce, nonce_extension, fmt, chain, not_before, not_after,
        issuer, key (the certified key)."""
        now = now or datetime.now(UTC)
        app_id = forge.get("app_id", self.app_id)
        certified = forge.get("key", self.key).public_key()
        auth = apple_pki.auth_data(
            app_id,
            counter=forge.get("counter", 0),
            flags=forge.get("flags", 0x40),
            aaguid=forge.get("aaguid", apple_pki.AAGUID[self.environment]),
            credential_id=forge.get("credential_id", key_id_of(certified)),
            credential_key=apple_pki.cose_key(certified),
            trailing=forge.get("trailing", b""),
        )
        nonce = forge.get("nonce") or hashlib.sha256(auth + client_data_hash).digest()
        issuer = forge.get("issuer") or self.issuer or apple_pki.test_intermediate()
        leaf = apple_pki.issue_credential_certificate(
            certified,
            nonce,
            app_id,
            issuer=issuer,
            not_before=forge.get("not_before", now - timedelta(days=1)),
            not_after=forge.get("not_after", now + timedelta(days=2)),
            nonce_extension=forge.get("nonce_extension"),
        )
        chain = forge.get("chain") or [leaf, issuer.cert]
        return apple_pki.attestation_object(chain, self.receipt, auth, fmt=forge.get("fmt", "apple-appattest"))

    # ------------------------------------------------------------------ assertion
    def assert_(self, client_data_hash: bytes, **forge: Any) -> bytes:
        """``generateAssertion(keyId, clientDataHash)``: counter + 1, ECDSA-SHA256 over the nonce.
        ``forge`` overrides: app_id, counter, flags, signing_key, signature."""
        self.counter = forge.get("counter", self.counter + 1)
        auth = apple_pki.auth_data(
            forge.get("app_id", self.app_id), counter=self.counter, flags=forge.get("flags", 0x40)
        )
        nonce = hashlib.sha256(auth + client_data_hash).digest()
        signer = forge.get("signing_key", self.key)
        signature = forge.get("signature") or signer.sign(nonce, ec.ECDSA(hashes.SHA256()))
        return apple_pki.assertion_object(signature, auth)

    # ------------------------------------------------------------------ wire format
    def enrollment_params(self, binding: RequestBinding, **forge: Any) -> dict[str, str]:
        """Token-request form parameters that enroll this device (authorization_code grant)."""
        return {
            "attestation_type": "apple-appattest",
            "attestation": b64url_encode(self.attest(binding.client_data_hash(), **forge)),
            "attestation_challenge": binding.challenge,
        }

    def assertion_params(self, binding: RequestBinding, **forge: Any) -> dict[str, str]:
        """Token-request form parameters that prove possession (refresh_token grant)."""
        return {
            "attestation_type": "apple-appattest",
            "attestation": b64url_encode(self.assert_(binding.client_data_hash(), **forge)),
            "attestation_challenge": binding.challenge,
        }
