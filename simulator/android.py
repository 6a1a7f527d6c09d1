"""An Android device simulator that speaks Vigil's wire format (``docs/attestation.md``, Android).

It plays the Android Keystore (an EC P-256 key generated "in the TEE" or StrongBox with
``setAttestationChallenge``, its attestation chain from ``attestation/testing/google_pki.py``,
``SHA256withECDSA`` signatures), the Play Integrity API (classic tokens encrypted with
the test Play keys; standard tokens recorded in a ``GoogleStandIn`` that plays
``decodeIntegrityToken``) and the app (token-request form parameters). Every step takes
``forge`` overrides so tests can build exactly one broken thing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.binding import RequestBinding
from attestation.testing import google_pki
from core.encoding import b64url_encode


@dataclass
class AndroidDevice:
    """One app instance on one Android device, with one attested Keystore key."""

    package_name: str = google_pki.TEST_PACKAGE
    signing_digests: tuple[bytes, ...] = (google_pki.TEST_SIGNING_DIGEST,)
    security_level: str = "TrustedEnvironment"
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    google: google_pki.GoogleStandIn | None = None
    device_verdicts: tuple[str, ...] = ("MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY", "MEETS_STRONG_INTEGRITY")

    @property
    def public_key_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    # ------------------------------------------------------------ Key Attestation
    def leaf_spec(self, challenge: bytes, **forge: Any) -> google_pki.LeafSpec:
        """An up-to-date device by default: this month's security patch (forge to age it)."""
        today = datetime.now(UTC)
        spec = google_pki.LeafSpec(
            challenge=challenge,
            attestation_security_level=self.security_level,
            packages=((self.package_name, 1),),
            signing_cert_digests=self.signing_digests,
            os_patch_level=int(today.strftime("%Y%m")),
            vendor_patch_level=int(today.strftime("%Y%m01")),
            boot_patch_level=int(today.strftime("%Y%m01")),
        )
        return spec.but(**forge)

    def attest(
        self,
        challenge: bytes,
        *,
        intermediate: google_pki.CA | None = None,
        root: google_pki.CA | None = None,
        **forge: Any,
    ) -> str:
        """``KeyStore.getCertificateChain`` after generating the key with ``challenge``, as PEM
        (leaf first). ``forge``: any ``LeafSpec`` field (boot state, patch levels...)."""
        certs = google_pki.attestation_chain(
            self.key.public_key(), self.leaf_spec(challenge, **forge), intermediate=intermediate, root=root
        )
        return google_pki.to_pem(certs)

    def sign(self, binding: RequestBinding, *, key: ec.EllipticCurvePrivateKey | None = None) -> str:
        """``Signature.getInstance("SHA256withECDSA")`` over ``binding.client_data()``, base64url."""
        return b64url_encode((key or self.key).sign(binding.client_data(), ec.ECDSA(hashes.SHA256())))

    # ------------------------------------------------------------ Play Integrity
    def verdict(
        self, binding: RequestBinding, *, kind: str, now: datetime | None = None, **forge: Any
    ) -> dict[str, Any]:
        """The verdict Google would return. ``kind``: "classic" (nonce) or "standard" (requestHash).
        ``forge``: any ``google_pki.make_verdict`` argument."""
        now = now or datetime.now(UTC)
        args: dict[str, Any] = {
            "package_name": self.package_name,
            "timestamp_ms": str(int(now.timestamp() * 1000)),
            "cert_digests": self.signing_digests,
            "device_verdicts": self.device_verdicts,
        }
        args["nonce" if kind == "classic" else "request_hash"] = binding.request_hash()
        args.update(forge)
        return google_pki.make_verdict(**args)

    def classic_token(self, binding: RequestBinding, *, now: datetime | None = None, **forge: Any) -> str:
        """``IntegrityManager.requestIntegrityToken`` with ``setNonce(binding.request_hash())``."""
        return google_pki.encrypt_verdict(self.verdict(binding, kind="classic", now=now, **forge))

    def standard_token(self, binding: RequestBinding, *, now: datetime | None = None, **forge: Any) -> str:
        """``StandardIntegrityTokenProvider.request`` with ``setRequestHash(...)``: an opaque
        token that only (our stand-in of) Google can decode."""
        if self.google is None:
            raise RuntimeError("standard tokens need a GoogleStandIn to decode them")
        token = "std." + b64url_encode(secrets.token_bytes(48))
        self.google.record(token, self.verdict(binding, kind="standard", now=now, **forge))
        return token

    def integrity_token(self, binding: RequestBinding, kind: str, **forge: Any) -> str:
        return self.classic_token(binding, **forge) if kind == "classic" else self.standard_token(binding, **forge)

    # ------------------------------------------------------------ wire format
    def enrollment_params(
        self, binding: RequestBinding, *, integrity: str = "standard", **forge: Any
    ) -> dict[str, str]:
        """Token-request form parameters that enroll this device (authorization_code grant)."""
        return {
            "attestation_type": "android-key",
            "attestation": self.attest(binding.client_data_hash(), **forge),
            "integrity_token": self.integrity_token(binding, integrity),
            "integrity_token_type": integrity,
            "attestation_challenge": binding.challenge,
        }

    def refresh_params(self, binding: RequestBinding, *, integrity: str | None = "standard") -> dict[str, str]:
        """Token-request form parameters for a refresh: the key signature, and a verdict
        unless the client's policy lets us skip it (``integrity=None``)."""
        params = {
            "attestation_type": "android-key",
            "client_data_signature": self.sign(binding),
            "attestation_challenge": binding.challenge,
        }
        if integrity:
            params.update(integrity_token=self.integrity_token(binding, integrity), integrity_token_type=integrity)
        return params
