"""A test PKI reproducing Google's attestation formats byte for byte.

* Key Attestation: a root (EC P-384, like Google's 2025 "Key Attestation CA1"), an
  intermediate ("title=TEE"/"StrongBox", like the factory batch certificates) and a leaf
  "CN=Android Keystore Key" carrying a KeyDescription built from the very ASN.1 classes
  the verifier parses with (``attestation.android.keydescription``).
* Play Integrity: classic tokens are a JWE (``{"alg":"A256KW","enc":"A256GCM"}``)
  wrapping a JWS (``{"alg":"ES256"}``) over the verdict JSON, as Play returns them.

The root and Play keys are derived from fixed seeds, so every process (test, simulator,
live server) agrees on them, and the verifier pins the root by key. The verifier trusts
this root only with ``ATTESTATION_ALLOW_TEST_ROOTS`` on. Never use it in production.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID
from joserfc import jwe, jws
from joserfc.jwk import ECKey, OctKey

from core.encoding import b64url_encode

from ..android import keydescription as kd
from ..android.chain import TrustedRoot

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
LEAF_NOT_AFTER = dt.datetime(2048, 1, 1, tzinfo=UTC)  # Keystore's default notAfter, as in real leaves
TEST_PACKAGE = "com.example.vigil"
TEST_SIGNING_DIGEST = hashlib.sha256(b"vigil test app signing certificate").digest()
TITLE_OID = x509.ObjectIdentifier("2.5.4.12")


def _seeded_key(label: str, curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
    seed = int.from_bytes(hashlib.sha512(f"vigil-test-google-pki/{label}".encode()).digest(), "big")
    order = {
        "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        "secp384r1": int(
            "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973", 16
        ),
    }[curve.name]
    return ec.derive_private_key(seed % (order - 1) + 1, curve)


@dataclass(frozen=True)
class CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(serial: str, title: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.SERIAL_NUMBER, serial)]
    if title:
        attrs.append(x509.NameAttribute(TITLE_OID, title))
    return x509.Name(attrs)


def _ca_cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: CA | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(hashlib.sha256(subject.public_bytes()).digest()[:8], "big") | 1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
    )
    signer = issuer.key if issuer else key
    return builder.sign(signer, hashes.SHA384() if isinstance(signer.curve, ec.SECP384R1) else hashes.SHA256())


@functools.cache
def test_root() -> CA:
    """The deterministic test root (key fixed; certificate valid 2020-2060)."""
    key = _seeded_key("root", ec.SECP384R1())
    start, end = dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2060, 1, 1, tzinfo=UTC)
    return CA(key, _ca_cert(_name("7e57ab1ec0de0001"), key, None, start, end))


def make_ca(
    label: str,
    issuer: CA | None = None,
    *,
    title: str | None = "TEE",
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> CA:
    """An intermediate under ``issuer`` (or, without issuer, a self-signed untrusted root)."""
    key = _seeded_key(label, ec.SECP256R1())
    subject = _name(hashlib.sha256(label.encode()).hexdigest()[:16], title)
    start = not_before or dt.datetime(2020, 1, 1, tzinfo=UTC)
    end = not_after or dt.datetime(2050, 1, 1, tzinfo=UTC)
    return CA(key, _ca_cert(subject, key, issuer, start, end))


@functools.cache
def test_intermediate(title: str = "TEE") -> CA:
    return make_ca(f"intermediate-{title}", test_root(), title=title)


def test_trusted_roots() -> list[TrustedRoot]:
    cert = test_root().cert
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return [TrustedRoot(spki, cert.not_valid_before_utc, cert.not_valid_after_utc, "test:google_pki")]


@dataclass(frozen=True)
class LeafSpec:
    """Every KeyDescription field a test may want to vary; defaults pass the strict policy."""

    challenge: bytes
    attestation_version: int = 300
    attestation_security_level: str = "TrustedEnvironment"
    keymint_version: int = 300
    keymint_security_level: str | None = None
    unique_id: bytes = b""
    packages: tuple[tuple[str, int], ...] = ((TEST_PACKAGE, 1),)
    signing_cert_digests: tuple[bytes, ...] = (TEST_SIGNING_DIGEST,)
    verified_boot_state: str = "Verified"
    device_locked: bool = True
    include_root_of_trust: bool = True
    verified_boot_key: bytes = hashlib.sha256(b"vigil test verified boot key").digest()
    os_version: int = 150000
    os_patch_level: int = 202510
    vendor_patch_level: int = 20251005
    boot_patch_level: int = 20251005
    creation_ms: int = 1_760_000_000_000
    not_before: dt.datetime = EPOCH
    not_after: dt.datetime = LEAF_NOT_AFTER
    serial: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def but(self, **changes: Any) -> LeafSpec:
        return replace(self, **changes)


def key_description(spec: LeafSpec) -> kd.KeyDescription:
    """The KeyDescription as a device's KeyMint writes it (software list: creation time
    and application id; hardware list: key properties, root of trust, versions)."""
    app_id = kd.AttestationApplicationId(
        {
            "package_infos": [{"package_name": n.encode(), "version": v} for n, v in spec.packages],
            "signature_digests": list(spec.signing_cert_digests),
        }
    )
    hardware: dict[str, Any] = {
        "purpose": [2],
        "algorithm": 3,
        "key_size": 256,
        "digest": [4],
        "ec_curve": 1,
        "no_auth_required": kd.core.Null(),
        "origin": 0,
        "os_version": spec.os_version,
        "os_patch_level": spec.os_patch_level,
        "vendor_patch_level": spec.vendor_patch_level,
        "boot_patch_level": spec.boot_patch_level,
    }
    if spec.include_root_of_trust:
        hardware["root_of_trust"] = {
            "verified_boot_key": spec.verified_boot_key,
            "device_locked": spec.device_locked,
            "verified_boot_state": spec.verified_boot_state,
            "verified_boot_hash": hashlib.sha256(b"vbmeta").digest(),
        }
    hardware.update(spec.extra)
    software = {"creation_date_time": spec.creation_ms, "attestation_application_id": app_id.dump()}
    level = spec.attestation_security_level
    if level == "Software":
        software, hardware = {**hardware, **software}, {}
    return kd.KeyDescription(
        {
            "attestation_version": spec.attestation_version,
            "attestation_security_level": level,
            "keymaster_version": spec.keymint_version,
            "keymaster_security_level": spec.keymint_security_level or level,
            "attestation_challenge": spec.challenge,
            "unique_id": spec.unique_id,
            "software_enforced": _auth_list(software),
            "hardware_enforced": _auth_list(hardware),
        }
    )


def _auth_list(values: dict[str, Any]) -> kd.AuthorizationList:
    return kd.AuthorizationList(values) if values else kd.AuthorizationList.load(b"\x30\x00")


def make_leaf(
    public_key: CertificatePublicKeyTypes, spec: LeafSpec, issuer: CA, *, extension_der: bytes | None = None
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Android Keystore Key")]))
        .issuer_name(issuer.cert.subject)
        .public_key(public_key)
        .serial_number(spec.serial)
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
    )
    der = key_description(spec).dump() if extension_der is None else extension_der
    builder = builder.add_extension(
        x509.UnrecognizedExtension(x509.ObjectIdentifier(kd.KEY_DESCRIPTION_OID), der), critical=False
    )
    return builder.sign(issuer.key, hashes.SHA256())


def attestation_chain(
    public_key: CertificatePublicKeyTypes, spec: LeafSpec, *, intermediate: CA | None = None, root: CA | None = None
) -> list[x509.Certificate]:
    """Leaf, intermediate, root: what ``KeyStore.getCertificateChain`` returns."""
    title = "StrongBox" if spec.attestation_security_level == "StrongBox" else "TEE"
    inter = intermediate or test_intermediate(title)
    top = root or test_root()
    return [make_leaf(public_key, spec, inter), inter.cert, top.cert]


def to_pem(certs: list[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


# ---------------------------------------------------------------- Play Integrity


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@functools.cache
def play_decryption_key_raw() -> bytes:
    return hashlib.sha256(b"vigil-test-google-pki/play-decryption").digest()


@functools.cache
def play_signing_key() -> ec.EllipticCurvePrivateKey:
    return _seeded_key("play-verification", ec.SECP256R1())


def play_keys_b64() -> tuple[str, str]:
    """``(decryption key, verification key)`` in Play Console's spelling: base64 of the raw
    AES-256 key and base64 of the DER SubjectPublicKeyInfo of the EC P-256 key."""
    spki = (
        play_signing_key()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return _b64(play_decryption_key_raw()), _b64(spki)


def make_verdict(
    *,
    package_name: str = TEST_PACKAGE,
    nonce: str | None = None,
    request_hash: str | None = None,
    timestamp_ms: int | str,
    app_verdict: str = "PLAY_RECOGNIZED",
    cert_digests: tuple[bytes, ...] = (TEST_SIGNING_DIGEST,),
    version_code: str = "42",
    device_verdicts: tuple[str, ...] | None = (
        "MEETS_BASIC_INTEGRITY",
        "MEETS_DEVICE_INTEGRITY",
        "MEETS_STRONG_INTEGRITY",
    ),
    licensing: str = "LICENSED",
    testing: bool | None = None,
    sdk_version: int = 35,
) -> dict[str, Any]:
    """A decoded verdict with ``tokenPayloadExternal``'s shape (discovery rev 20260910)."""
    request: dict[str, Any] = {"requestPackageName": package_name, "timestampMillis": timestamp_ms}
    request.update({"nonce": nonce} if nonce is not None else {"requestHash": request_hash})
    device: dict[str, Any] = {
        "deviceAttributes": {"sdkVersion": sdk_version},
        "recentDeviceActivity": {"deviceActivityLevel": "LEVEL_1"},
    }
    if device_verdicts is not None:
        device["deviceRecognitionVerdict"] = list(device_verdicts)
    verdict: dict[str, Any] = {
        "requestDetails": request,
        "appIntegrity": {
            "appRecognitionVerdict": app_verdict,
            "packageName": package_name,
            "certificateSha256Digest": [b64url_encode(d) for d in cert_digests],
            "versionCode": version_code,
        },
        "deviceIntegrity": device,
        "accountDetails": {"appLicensingVerdict": licensing},
        "environmentDetails": {
            "playProtectVerdict": "NO_ISSUES",
            "appAccessRiskVerdict": {"appsDetected": ["KNOWN_INSTALLED"]},
        },
    }
    if testing is not None:
        verdict["testingDetails"] = {"isTestingResponse": testing}
    return verdict


def encrypt_verdict(
    verdict: dict[str, Any],
    *,
    decryption_key: bytes | None = None,
    signing_key: ec.EllipticCurvePrivateKey | None = None,
) -> str:
    """A classic integrity token: JWE(A256KW, A256GCM) of a JWS(ES256) of the verdict."""
    signer = ECKey.import_key(signing_key or play_signing_key())
    inner = jws.serialize_compact({"alg": "ES256"}, json.dumps(verdict).encode(), signer, algorithms=["ES256"])
    wrap = OctKey.import_key(decryption_key or play_decryption_key_raw())
    return jwe.encrypt_compact({"alg": "A256KW", "enc": "A256GCM"}, inner, wrap, algorithms=["A256KW", "A256GCM"])


# The local stand-in of Google's HTTP APIs lives in ``google_standin``; re-exported here.
from .google_standin import DecodeError, GoogleStandIn  # noqa: E402

__all__ = ["DecodeError", "GoogleStandIn"]
