"""The test PKI and the simulator reproduce Apple's App Attest formats byte for byte
(compared with a real iOS 14.4 attestation and assertion)."""

from __future__ import annotations

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.apple.certs import TEST_ROOT_PATH, trusted_roots
from attestation.testing import apple_pki
from simulator.ios import IOSDevice

from .apple_vectors import assertion_vectors, attestation_vectors
from .conftest import APPLE_APP_ID

REAL = next(v for v in attestation_vectors() if v.name == "veehaitch-ios-14.4")
REAL_ASSERTION = next(v for v in assertion_vectors() if v.name == "veehaitch-ios-14.4")


def _shape(cert: x509.Certificate) -> dict[str, object]:
    return {
        "version": cert.version,
        "sig": cert.signature_algorithm_oid.dotted_string,
        "subject_oids": [a.oid.dotted_string for a in cert.subject],
        "issuer_oids": [a.oid.dotted_string for a in cert.issuer],
        "extensions": [(e.oid.dotted_string, e.critical) for e in cert.extensions],
        "key": type(cert.public_key()).__name__ + cert.public_key().curve.name,  # type: ignore[union-attr]
    }


@pytest.fixture
def simulated() -> dict[str, object]:
    device = IOSDevice(APPLE_APP_ID, environment="development")
    return cbor2.loads(device.attest(b"\x00" * 32))


def test_cbor_layout_matches_apple(simulated: dict[str, object]) -> None:
    real = cbor2.loads(REAL.attestation)
    assert list(simulated) == list(real) == ["fmt", "attStmt", "authData"]
    assert list(simulated["attStmt"]) == list(real["attStmt"]) == ["x5c", "receipt"]  # type: ignore[call-overload]
    assert len(simulated["attStmt"]["x5c"]) == len(real["attStmt"]["x5c"]) == 2  # type: ignore[index]

    raw = IOSDevice(APPLE_APP_ID).attest(b"\x00" * 32)
    # a3 "fmt" "apple-appattest" "attStmt" a2 "x5c" 82: identical CBOR head bytes
    assert raw[:35] == REAL.attestation[:35]


def test_authenticator_data_layout_matches_apple(simulated: dict[str, object]) -> None:
    real = cbor2.loads(REAL.attestation)["authData"]
    mine = simulated["authData"]
    assert isinstance(mine, bytes)
    assert len(mine) == len(real) == 164
    assert mine[32] == real[32] == 0x40
    assert mine[37:53] == real[37:53] == b"appattestdevelop"
    assert mine[53:55] == real[53:55] == b"\x00\x20"
    cose_prefix = bytes.fromhex("a5010203262001215820")
    assert mine[87:97] == real[87:97] == cose_prefix


def test_credential_certificate_shape_matches_apple(simulated: dict[str, object]) -> None:
    real_leaf, real_ca = (x509.load_der_x509_certificate(c) for c in cbor2.loads(REAL.attestation)["attStmt"]["x5c"])
    leaf, ca = (x509.load_der_x509_certificate(c) for c in simulated["attStmt"]["x5c"])  # type: ignore[index]
    assert _shape(leaf) == _shape(real_leaf)
    assert _shape(ca) == _shape(real_ca)


def test_leaf_common_name_is_the_hex_key_id() -> None:
    device = IOSDevice(APPLE_APP_ID)
    leaf = x509.load_der_x509_certificate(cbor2.loads(device.attest(b"\x00" * 32))["attStmt"]["x5c"][0])
    real_leaf = x509.load_der_x509_certificate(cbor2.loads(REAL.attestation)["attStmt"]["x5c"][0])
    cn = x509.NameOID.COMMON_NAME
    assert leaf.subject.get_attributes_for_oid(cn)[0].value == device.key_id.hex()
    assert real_leaf.subject.get_attributes_for_oid(cn)[0].value == REAL.key_id.hex()


def test_apple_private_extensions_are_reproduced_exactly() -> None:
    real_leaf = x509.load_der_x509_certificate(cbor2.loads(REAL.attestation)["attStmt"]["x5c"][0])
    raw_8_5 = real_leaf.extensions.get_extension_for_oid(apple_pki.OID_APPLE_8_5).value.value  # type: ignore[attr-defined]
    raw_8_7 = real_leaf.extensions.get_extension_for_oid(apple_pki.OID_APPLE_OS_VERSION).value.value  # type: ignore[attr-defined]
    assert apple_pki.apple_8_5_extension(REAL.app_id) == raw_8_5
    assert apple_pki.os_version_extension("14.4") == raw_8_7


def test_assertion_layout_matches_apple() -> None:
    real = cbor2.loads(REAL_ASSERTION.assertion)
    device = IOSDevice(APPLE_APP_ID)
    mine = cbor2.loads(device.assert_(b"\x00" * 32))
    assert list(mine) == list(real) == ["signature", "authenticatorData"]
    assert len(mine["authenticatorData"]) == len(real["authenticatorData"]) == 37
    assert mine["authenticatorData"][32] == real["authenticatorData"][32] == 0x40
    assert mine["signature"][0] == real["signature"][0] == 0x30  # DER ECDSA-Sig-Value


def test_test_root_is_only_trusted_when_allowed(settings: object) -> None:
    test_root_der = apple_pki.test_root().cert.public_bytes(Encoding.DER)
    settings.ATTESTATION_ALLOW_TEST_ROOTS = False  # type: ignore[attr-defined]
    assert test_root_der not in {r.public_bytes(Encoding.DER) for r in trusted_roots()}
    settings.ATTESTATION_ALLOW_TEST_ROOTS = True  # type: ignore[attr-defined]
    assert test_root_der in {r.public_bytes(Encoding.DER) for r in trusted_roots()}
    assert TEST_ROOT_PATH.exists()
