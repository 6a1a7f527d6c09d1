"""Every App Attest attestation check fails for its own reason (attacks forged with the test PKI)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.apple.attestation import verify_attestation
from attestation.errors import AttestationError, Reason
from attestation.testing import apple_pki
from simulator.ios import IOSDevice

from .conftest import APPLE_APP_ID

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CDH = hashlib.sha256(b"client data").digest()

pytestmark = pytest.mark.usefixtures("allow_test_roots")


def verify(attestation: bytes, **overrides: Any) -> Any:
    kwargs: dict[str, Any] = {"app_id": APPLE_APP_ID, "environment": "production", "client_data_hash": CDH, "now": NOW}
    kwargs.update(overrides)
    return verify_attestation(attestation, **kwargs)


def reason_of(attestation: bytes, **overrides: Any) -> str:
    with pytest.raises(AttestationError) as exc:
        verify(attestation, **overrides)
    return exc.value.reason


def test_simulated_attestation_verifies(ios_device: IOSDevice) -> None:
    result = verify(ios_device.attest(CDH, now=NOW), key_id=ios_device.key_id)
    assert result.key_id == ios_device.key_id
    assert result.public_key_pem == ios_device.public_key_pem
    assert result.receipt == ios_device.receipt


def test_development_environment(ios_device: IOSDevice) -> None:
    device = IOSDevice(APPLE_APP_ID, environment="development")
    assert verify(device.attest(CDH, now=NOW), environment="development").environment == "development"


def test_test_root_is_refused_unless_allowed(ios_device: IOSDevice, settings: Any) -> None:
    settings.ATTESTATION_ALLOW_TEST_ROOTS = False
    assert reason_of(ios_device.attest(CDH, now=NOW)) == Reason.CHAIN_UNTRUSTED


# --------------------------------------------------------------------- step 0: decoding
@pytest.mark.parametrize(
    "payload",
    [b"", b"\xff\xff", b"not cbor at all", cbor2.dumps([1, 2]), cbor2.dumps({"fmt": "apple-appattest"}) + b"\x00"],
    ids=["empty", "bad-major", "text", "array", "trailing"],
)
def test_malformed_cbor(payload: bytes) -> None:
    assert reason_of(payload) == Reason.MALFORMED_CBOR


def test_unsupported_format(ios_device: IOSDevice) -> None:
    assert reason_of(ios_device.attest(CDH, now=NOW, fmt="packed")) == Reason.UNSUPPORTED_FORMAT


@pytest.mark.parametrize(
    "stmt",
    [{"x5c": []}, {"x5c": "cert"}, {}, {"x5c": [b"x"], "receipt": "text"}],
    ids=["empty-x5c", "x5c-text", "no-x5c", "receipt-text"],
)
def test_malformed_statement(stmt: dict[str, Any]) -> None:
    obj = cbor2.dumps({"fmt": "apple-appattest", "attStmt": stmt, "authData": b"\x00" * 37})
    assert reason_of(obj) == Reason.MALFORMED_CBOR


@pytest.mark.parametrize("entry", [b"not a certificate", 42], ids=["garbage", "integer"])
def test_malformed_certificate(entry: Any) -> None:
    obj = cbor2.dumps({"fmt": "apple-appattest", "attStmt": {"x5c": [entry], "receipt": b""}, "authData": b"\x00" * 37})
    assert reason_of(obj) == Reason.MALFORMED_CERTIFICATE


def test_truncated_authenticator_data_is_malformed(ios_device: IOSDevice) -> None:
    obj = cbor2.loads(ios_device.attest(CDH, now=NOW))
    obj["authData"] = obj["authData"][:20]
    assert reason_of(cbor2.dumps(obj)) == Reason.MALFORMED_AUTHENTICATOR_DATA


# --------------------------------------------------------------------- step 1: chain
def test_rogue_ca_is_chain_untrusted(ios_device: IOSDevice) -> None:
    rogue = apple_pki.make_intermediate(apple_pki.make_root("Rogue Root"), "Apple App Attestation CA 1")
    assert reason_of(ios_device.attest(CDH, now=NOW, issuer=rogue)) == Reason.CHAIN_UNTRUSTED


def test_rogue_ca_with_the_real_apple_name_and_rogue_root_in_x5c_is_untrusted(ios_device: IOSDevice) -> None:
    root = apple_pki.make_root("Apple App Attestation Root CA")
    rogue = apple_pki.make_intermediate(root, "Apple App Attestation CA 1")
    attestation = ios_device.attest(CDH, now=NOW, issuer=rogue)
    obj = cbor2.loads(attestation)
    obj["attStmt"]["x5c"].append(root.cert.public_bytes(apple_pki.serialization.Encoding.DER))
    assert reason_of(cbor2.dumps(obj)) == Reason.CHAIN_UNTRUSTED


def test_broken_link_is_chain_untrusted(ios_device: IOSDevice) -> None:
    other = apple_pki.make_intermediate(apple_pki.test_root())
    leaf = apple_pki.issue_credential_certificate(
        ios_device.key.public_key(), b"\x00" * 32, APPLE_APP_ID, not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=1),
    )
    assert reason_of(ios_device.attest(CDH, now=NOW, chain=[leaf, other.cert])) == Reason.CHAIN_UNTRUSTED


def test_leaf_signed_by_a_non_ca_is_chain_untrusted(ios_device: IOSDevice) -> None:
    """A credential certificate cannot act as a CA for another credential certificate."""
    ca = apple_pki.test_intermediate()
    middle_key = ec.generate_private_key(ec.SECP256R1())
    middle = apple_pki.issue_credential_certificate(
        middle_key.public_key(), b"\x00" * 32, APPLE_APP_ID, issuer=ca,
        not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=1),
    )
    fake_ca = apple_pki.CA(middle, middle_key)
    attestation = ios_device.attest(CDH, now=NOW, issuer=fake_ca)
    obj = cbor2.loads(attestation)
    obj["attStmt"]["x5c"].append(ca.cert.public_bytes(apple_pki.serialization.Encoding.DER))
    assert reason_of(cbor2.dumps(obj)) == Reason.CHAIN_UNTRUSTED


def test_expired_leaf_is_chain_expired(ios_device: IOSDevice) -> None:
    attestation = ios_device.attest(CDH, now=NOW)
    assert reason_of(attestation, now=NOW + timedelta(days=3)) == Reason.CHAIN_EXPIRED


def test_not_yet_valid_leaf_is_chain_expired(ios_device: IOSDevice) -> None:
    attestation = ios_device.attest(CDH, now=NOW)
    assert reason_of(attestation, now=NOW - timedelta(days=2)) == Reason.CHAIN_EXPIRED


# --------------------------------------------------------------------- steps 2-4: nonce
def test_other_client_data_is_nonce_mismatch(ios_device: IOSDevice) -> None:
    attestation = ios_device.attest(CDH, now=NOW)
    assert reason_of(attestation, client_data_hash=hashlib.sha256(b"other").digest()) == Reason.NONCE_MISMATCH


def test_forged_nonce_is_nonce_mismatch(ios_device: IOSDevice) -> None:
    assert reason_of(ios_device.attest(CDH, now=NOW, nonce=b"\x01" * 32)) == Reason.NONCE_MISMATCH


def test_tampered_authenticator_data_is_nonce_mismatch(ios_device: IOSDevice) -> None:
    obj = cbor2.loads(ios_device.attest(CDH, now=NOW))
    auth = bytearray(obj["authData"])
    auth[33:37] = (5).to_bytes(4, "big")  # raise the counter after the nonce was certified
    obj["authData"] = bytes(auth)
    assert reason_of(cbor2.dumps(obj)) == Reason.NONCE_MISMATCH


@pytest.mark.parametrize(
    "raw",
    [b"\x04\x20" + b"\x00" * 32, b"\x30\x03\x02\x01\x00", b"\x30\x24\xa1\x22\x04\x20" + b"\x00" * 31, b"junk"],
    ids=["bare-octets", "wrong-inner", "truncated", "junk"],
)
def test_malformed_nonce_extension(ios_device: IOSDevice, raw: bytes) -> None:
    assert reason_of(ios_device.attest(CDH, now=NOW, nonce_extension=raw)) == Reason.MALFORMED_EXTENSION


def test_non_der_nonce_extension_is_malformed(ios_device: IOSDevice) -> None:
    auth_nonce = b"\x00" * 32
    ber = b"\x30\x81\x24\xa1\x22\x04\x20" + auth_nonce  # long-form length: BER, not DER
    assert reason_of(ios_device.attest(CDH, now=NOW, nonce_extension=ber)) == Reason.MALFORMED_EXTENSION


# --------------------------------------------------------------------- step 5: key id
def test_other_key_id_is_key_id_mismatch(ios_device: IOSDevice) -> None:
    other = IOSDevice(APPLE_APP_ID)
    assert reason_of(ios_device.attest(CDH, now=NOW), key_id=other.key_id) == Reason.KEY_ID_MISMATCH


# --------------------------------------------------------------------- step 6: app id
def test_other_app_is_app_id_mismatch(ios_device: IOSDevice) -> None:
    attestation = ios_device.attest(CDH, now=NOW, app_id="ABCDE12345.com.attacker.app")
    assert reason_of(attestation) == Reason.APP_ID_MISMATCH


def test_other_team_is_app_id_mismatch(ios_device: IOSDevice) -> None:
    assert reason_of(ios_device.attest(CDH, now=NOW), app_id="ZZZZZ99999.com.example.vigil") == Reason.APP_ID_MISMATCH


# --------------------------------------------------------------------- step 7: counter
def test_non_zero_counter_is_counter_not_zero(ios_device: IOSDevice) -> None:
    assert reason_of(ios_device.attest(CDH, now=NOW, counter=1)) == Reason.COUNTER_NOT_ZERO


# --------------------------------------------------------------------- step 8: aaguid
def test_development_key_for_production_app_is_aaguid_mismatch() -> None:
    device = IOSDevice(APPLE_APP_ID, environment="development")
    assert reason_of(device.attest(CDH, now=NOW)) == Reason.AAGUID_MISMATCH


def test_production_key_for_development_app_is_aaguid_mismatch(ios_device: IOSDevice) -> None:
    assert reason_of(ios_device.attest(CDH, now=NOW), environment="development") == Reason.AAGUID_MISMATCH


def test_missing_attested_credential_data_is_malformed(ios_device: IOSDevice) -> None:
    attestation = ios_device.attest(CDH, now=NOW, flags=0x00)
    obj = cbor2.loads(attestation)
    obj["authData"] = obj["authData"][:37]
    nonce = hashlib.sha256(obj["authData"] + CDH).digest()
    forged = ios_device.attest(CDH, now=NOW, nonce=nonce)
    forged_obj = cbor2.loads(forged)
    forged_obj["authData"] = obj["authData"]
    assert reason_of(cbor2.dumps(forged_obj)) == Reason.MALFORMED_AUTHENTICATOR_DATA


# --------------------------------------------------------------------- step 9: credential id
def test_other_credential_id_is_credential_id_mismatch(ios_device: IOSDevice) -> None:
    attestation = ios_device.attest(CDH, now=NOW, credential_id=b"\x07" * 32)
    assert reason_of(attestation) == Reason.CREDENTIAL_ID_MISMATCH


# --------------------------------------------------------------------- quirks
def test_unflagged_trailing_extensions_are_tolerated(ios_device: IOSDevice) -> None:
    trailing = cbor2.dumps({"apple_bundle_version_01": "1", "apple_validation_category_01": b"\x01\x00\x00\x00"})
    result = verify(ios_device.attest(CDH, now=NOW, trailing=trailing))
    assert result.facts["authenticator_extensions"]["apple_bundle_version_01"] == "1"


def test_trailing_garbage_is_malformed(ios_device: IOSDevice) -> None:
    attestation = ios_device.attest(CDH, now=NOW, trailing=cbor2.dumps({"a": 1}) + b"\x00")
    assert reason_of(attestation) == Reason.MALFORMED_AUTHENTICATOR_DATA


def test_unknown_environment_is_a_programming_error(ios_device: IOSDevice) -> None:
    with pytest.raises(ValueError):
        verify(ios_device.attest(CDH, now=NOW), environment="staging")


def test_ca_below_a_pathlen_zero_intermediate_is_chain_untrusted(ios_device: IOSDevice) -> None:
    """The intermediate has pathLenConstraint 0: a sub-CA it signed must not issue leaves."""
    sub = apple_pki.make_intermediate(apple_pki.test_intermediate(), "Sub CA")
    attestation = ios_device.attest(CDH, now=NOW, issuer=sub)
    obj = cbor2.loads(attestation)
    obj["attStmt"]["x5c"].append(apple_pki.test_intermediate().cert.public_bytes(apple_pki.serialization.Encoding.DER))
    assert reason_of(cbor2.dumps(obj)) == Reason.CHAIN_UNTRUSTED
