"""Proof of possession on refresh: a signature by the attested, hardware-backed key.

The app signs the canonical request binding (``RequestBinding.client_data()``) with the
Android Keystore key whose attestation we verified at enrollment, using
``SHA256withECDSA`` (EC P-256 keys) or ``SHA256withRSA`` (PKCS#1 v1.5, RSA keys), the
two Keystore signature algorithms Google lists for attested signing keys. A failure is
``signature_invalid``.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ..binding import RequestBinding
from ..encoding import b64decode_any
from ..errors import AttestationError, Reason

MAX_SIGNATURE_LEN = 1024


def load_public_key(pem: str | bytes) -> PublicKeyTypes:
    """The stored SubjectPublicKeyInfo PEM of a device key."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise AttestationError(Reason.MALFORMED_CERTIFICATE, "stored device key is not a PEM public key") from exc


def decode_signature(value: str | bytes) -> bytes:
    """A signature sent as base64url/base64 text (or already raw bytes)."""
    raw = value if isinstance(value, bytes) else b64decode_any(value) if value.strip() else b""
    if not raw or len(raw) > MAX_SIGNATURE_LEN:
        raise AttestationError(Reason.SIGNATURE_INVALID, "signature has an impossible length")
    return raw


def verify_key_signature(public_key: PublicKeyTypes, signature: str | bytes, binding: RequestBinding) -> None:
    """Verify ``signature`` (DER ECDSA or PKCS#1 v1.5) over ``binding.client_data()``."""
    raw = decode_signature(signature)
    message = binding.client_data()
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(raw, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise AttestationError(Reason.SIGNATURE_INVALID, "unsupported device key type")
    except (InvalidSignature, ValueError) as exc:
        raise AttestationError(Reason.SIGNATURE_INVALID, "signature by the attested key does not verify") from exc
