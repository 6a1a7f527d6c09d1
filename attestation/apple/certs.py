"""App Attest certificate helpers: trusted roots, the nonce extension, the key identifier.

The credential certificate carries the nonce in extension ``1.2.840.113635.100.8.2``
whose value is ``SEQUENCE { [1] EXPLICIT OCTET STRING nonce }`` (Apple, "Validating
apps that connect to your server", attestation step 4: "a DER-encoded ASN.1 sequence.
Decode the sequence and extract the single octet string that it contains").
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..app_settings import app_settings
from ..errors import AttestationError, Reason
from ..x509chain import load_pem_files

NONCE_OID = x509.ObjectIdentifier("1.2.840.113635.100.8.2")
TEST_ROOT_PATH = Path(__file__).resolve().parent.parent / "testing" / "certs" / "apple_test_root.pem"


class AppleNonceExtension(core.Sequence):
    """``SEQUENCE { nonce [1] EXPLICIT OCTET STRING }``."""

    _fields = [("nonce", core.OctetString, {"explicit": 1})]


def trusted_roots() -> list[x509.Certificate]:
    """``ATTESTATION_APPLE_ROOT_CERTS`` (default: the shipped Apple root), plus the test
    PKI's root only when ``ATTESTATION_ALLOW_TEST_ROOTS`` is on."""
    paths: list[str | Path] = list(app_settings.APPLE_ROOT_CERTS)
    if app_settings.ALLOW_TEST_ROOTS:
        paths.append(TEST_ROOT_PATH)
    return load_pem_files(paths)


def encode_nonce_extension(nonce: bytes) -> bytes:
    """The DER extension value Apple puts in the credential certificate (used by the test PKI)."""
    return AppleNonceExtension({"nonce": nonce}).dump(force=True)


def extract_nonce(cert: x509.Certificate) -> bytes:
    """Step 4: the single OCTET STRING of extension 1.2.840.113635.100.8.2, parsed as strict DER."""
    try:
        ext = cert.extensions.get_extension_for_oid(NONCE_OID)
    except x509.ExtensionNotFound as exc:
        raise AttestationError(Reason.MALFORMED_EXTENSION, "credential certificate has no nonce extension") from exc
    except ValueError as exc:  # duplicate or unparsable extensions
        raise AttestationError(Reason.MALFORMED_EXTENSION, str(exc)) from exc
    raw = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
    try:
        parsed = AppleNonceExtension.load(raw, strict=True)
        nonce = parsed["nonce"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise AttestationError(Reason.MALFORMED_EXTENSION, f"nonce extension: {exc}") from exc
    if not isinstance(nonce, bytes) or parsed.dump(force=True) != raw:
        raise AttestationError(Reason.MALFORMED_EXTENSION, "nonce extension is not DER")
    return nonce


def ec_p256_public_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise AttestationError(Reason.MALFORMED_CERTIFICATE, "credential key is not EC P-256")
    return key


def key_id_of(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """Step 5: SHA-256 of the uncompressed EC point (0x04 ‖ X ‖ Y)."""
    return hashlib.sha256(public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)).digest()


def public_key_pem(public_key: ec.EllipticCurvePublicKey) -> str:
    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
