"""A test PKI that reproduces Apple App Attest's formats byte for byte.

Same layout as real attestations (checked against Apple's vectors in the tests):
- root (P-384) → intermediate "… App Attestation CA 1" (P-384, ``ecdsa-with-SHA384``,
  BasicConstraints CA pathlen 0, AKI, SKI, KeyUsage keyCertSign|cRLSign) →
  credential certificate (P-256 key, ``ecdsa-with-SHA256``, subject
  ``CN=<hex keyId>, OU=AAA Certification, O=Apple Inc., ST=California``, extensions in
  Apple's order: BasicConstraints CA:FALSE (critical), KeyUsage 0xF0 (critical),
  1.2.840.113635.100.8.5, 1.2.840.113635.100.8.7 (OS version), 1.2.840.113635.100.8.2 (nonce));
- CBOR ``{"fmt": "apple-appattest", "attStmt": {"x5c": [leaf, ca], "receipt": …}, "authData": …}``;
- authData = rpIdHash ‖ flags 0x40 ‖ counter ‖ aaguid ‖ len ‖ keyId ‖ COSE EC2 key ``{1:2, 3:-7, -1:1, -2:x, -3:y}``.

The root and intermediate (keys included, this is test material) live in ``certs/``; they
are trusted only when ``ATTESTATION_ALLOW_TEST_ROOTS`` is on. ``python -m
attestation.testing.apple_pki`` regenerates them. Receipts are opaque bytes here.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..apple.certs import NONCE_OID, encode_nonce_extension, key_id_of

CERTS_DIR = Path(__file__).resolve().parent / "certs"
ROOT_CERT, ROOT_KEY = CERTS_DIR / "apple_test_root.pem", CERTS_DIR / "apple_test_root.key.pem"
CA_CERT, CA_KEY = CERTS_DIR / "apple_test_ca1.pem", CERTS_DIR / "apple_test_ca1.key.pem"
OID_APPLE_8_5 = x509.ObjectIdentifier("1.2.840.113635.100.8.5")
OID_APPLE_OS_VERSION = x509.ObjectIdentifier("1.2.840.113635.100.8.7")
AAGUID = {"development": b"appattestdevelop", "production": b"appattest" + b"\x00" * 7}


@dataclass(frozen=True)
class CA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(cn: str, org: str, ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs += [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
    ]
    return x509.Name(attrs)


def make_root(cn: str = "Vigil Test App Attestation Root CA", years: int = 25) -> CA:
    key = ec.generate_private_key(ec.SECP384R1())
    start = datetime(2020, 3, 18, tzinfo=UTC)
    name = _name(cn, "Vigil Test PKI")
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start)
        .not_valid_after(start + timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_ca_usage(), critical=True)
        .sign(key, hashes.SHA384())
    )
    return CA(cert, key)


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(False, False, False, False, False, True, True, False, False)


def make_intermediate(root: CA, cn: str = "Vigil Test App Attestation CA 1", years: int = 25) -> CA:
    key = ec.generate_private_key(ec.SECP384R1())
    start = datetime(2020, 3, 18, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn, "Vigil Test PKI")).issuer_name(root.cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_ca_usage(), critical=True)
        .sign(root.key, hashes.SHA384())
    )
    return CA(cert, key)


def _load(cert_path: Path, key_path: Path) -> CA:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{key_path} is not an EC private key")
    return CA(cert, key)


@lru_cache(maxsize=1)
def test_root() -> CA:
    return _load(ROOT_CERT, ROOT_KEY)


@lru_cache(maxsize=1)
def test_intermediate() -> CA:
    return _load(CA_CERT, CA_KEY)


def _der(tag: bytes, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return tag + bytes([n]) + content
    size = (n.bit_length() + 7) // 8
    length = bytes([0x80 | size]) + n.to_bytes(size, "big")
    return tag + length + content


def _int(value: int) -> bytes:
    return _der(b"\x02", bytes([value]))


def apple_8_5_extension(app_id: str) -> bytes:
    """The 1.2.840.113635.100.8.5 value in Apple's shape (values as on iOS 14.4 devices)."""
    def ctx(n: int, v: bytes) -> bytes:  # context tags 1200+ in high-tag-number form
        return _der(b"\xbf\x89" + bytes([n]), v)

    body = b"".join([
        _der(b"\xa4", _int(10)), ctx(0x30, _int(1)), ctx(0x31, _int(0)), ctx(0x32, _int(0)),
        ctx(0x33, _int(1)), ctx(0x34, _der(b"\x04", app_id.encode())), _der(b"\xa5", _der(b"\x04", b" sks")),
        ctx(0x36, _int(5)), ctx(0x37, _int(0)), ctx(0x39, _int(0)), ctx(0x3A, _int(0)),
    ])
    return _der(b"\x30", body)


def os_version_extension(version: str = "17.4") -> bytes:
    return _der(b"\x30", _der(b"\xbf\x8a\x78", _der(b"\x04", version.encode())))


def issue_credential_certificate(
    public_key: ec.EllipticCurvePublicKey,
    nonce: bytes,
    app_id: str,
    *,
    issuer: CA | None = None,
    not_before: datetime,
    not_after: datetime,
    nonce_extension: bytes | None = None,
) -> x509.Certificate:
    """A credential certificate as Apple issues it (``nonce_extension`` overrides the raw value)."""
    issuer = issuer or test_intermediate()
    unrecognized = x509.UnrecognizedExtension
    subject = _name(key_id_of(public_key).hex(), "Apple Inc.", "AAA Certification")
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.cert.subject).public_key(public_key)
        .serial_number(int(not_before.timestamp() * 1000)).not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, True, True, True, False, False, False, False, False), critical=True)
        .add_extension(unrecognized(OID_APPLE_8_5, apple_8_5_extension(app_id)), critical=False)
        .add_extension(unrecognized(OID_APPLE_OS_VERSION, os_version_extension()), critical=False)
        .add_extension(unrecognized(NONCE_OID, nonce_extension or encode_nonce_extension(nonce)), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )


def cose_key(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """COSE_Key EC2/ES256/P-256 in Apple's key order."""
    numbers = public_key.public_numbers()
    return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})


def auth_data(
    app_id: str,
    *,
    counter: int,
    flags: int = 0x40,
    aaguid: bytes | None = None,
    credential_id: bytes | None = None,
    credential_key: bytes = b"",
    trailing: bytes = b"",
) -> bytes:
    """Authenticator data; attested credential data only when ``aaguid`` is given."""
    head = hashlib.sha256(app_id.encode()).digest() + bytes([flags]) + struct.pack(">I", counter)
    if aaguid is None:
        return head + trailing
    cred = credential_id or b""
    return head + aaguid + struct.pack(">H", len(cred)) + cred + credential_key + trailing


def attestation_object(
    certs: list[x509.Certificate], receipt: bytes, auth: bytes, fmt: str = "apple-appattest"
) -> bytes:
    x5c = [c.public_bytes(serialization.Encoding.DER) for c in certs]
    return cbor2.dumps({"fmt": fmt, "attStmt": {"x5c": x5c, "receipt": receipt}, "authData": auth})


def assertion_object(signature: bytes, auth: bytes) -> bytes:
    return cbor2.dumps({"signature": signature, "authenticatorData": auth})


def write_ca_files(directory: Path = CERTS_DIR) -> None:
    """Regenerate the committed test root and intermediate (and their keys)."""
    directory.mkdir(parents=True, exist_ok=True)
    root = make_root()
    ca = make_intermediate(root)
    for ca_obj, cert_path, key_path in ((root, ROOT_CERT, ROOT_KEY), (ca, CA_CERT, CA_KEY)):
        (directory / cert_path.name).write_bytes(ca_obj.cert.public_bytes(serialization.Encoding.PEM))
        key_pem = ca_obj.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (directory / key_path.name).write_bytes(key_pem)


if __name__ == "__main__":  # pragma: no cover
    write_ca_files()
