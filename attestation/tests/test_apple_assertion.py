"""Every App Attest assertion check fails for its own reason (forged with the simulator)."""

from __future__ import annotations

import hashlib
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.apple.assertion import load_public_key, verify_assertion
from attestation.errors import AttestationError, Reason
from simulator.ios import IOSDevice

from .conftest import APPLE_APP_ID

CDH = hashlib.sha256(b"client data of a refresh").digest()


def verify(device: IOSDevice, assertion: bytes, **overrides: Any) -> Any:
    kwargs: dict[str, Any] = {
        "public_key": device.public_key_pem,
        "app_id": APPLE_APP_ID,
        "client_data_hash": CDH,
        "previous_counter": 0,
    }
    kwargs.update(overrides)
    return verify_assertion(assertion, **kwargs)


def reason_of(device: IOSDevice, assertion: bytes, **overrides: Any) -> str:
    with pytest.raises(AttestationError) as exc:
        verify(device, assertion, **overrides)
    return exc.value.reason


def test_simulated_assertions_verify_with_increasing_counters(ios_device: IOSDevice) -> None:
    assert verify(ios_device, ios_device.assert_(CDH)).counter == 1
    assert verify(ios_device, ios_device.assert_(CDH), previous_counter=1).counter == 2


def test_public_key_may_be_der_or_a_key_object(ios_device: IOSDevice) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    der = ios_device.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert verify(ios_device, ios_device.assert_(CDH), public_key=der).counter == 1
    assert verify(ios_device, ios_device.assert_(CDH), public_key=ios_device.key.public_key()).counter == 2


# --------------------------------------------------------------------- decoding
@pytest.mark.parametrize(
    "payload",
    [b"", b"\x9f", cbor2.dumps("text"), cbor2.dumps({"signature": "x", "authenticatorData": b"a"}), cbor2.dumps({})],
    ids=["empty", "indefinite", "text", "signature-text", "empty-map"],
)
def test_malformed_cbor(ios_device: IOSDevice, payload: bytes) -> None:
    assert reason_of(ios_device, payload) == Reason.MALFORMED_CBOR


def test_short_authenticator_data_is_malformed(ios_device: IOSDevice) -> None:
    payload = cbor2.dumps({"signature": b"sig", "authenticatorData": b"\x00" * 36})
    assert reason_of(ios_device, payload) == Reason.MALFORMED_AUTHENTICATOR_DATA


@pytest.mark.parametrize("key", ["not a key", b"\x30\x00"], ids=["text", "der-garbage"])
def test_malformed_stored_key(ios_device: IOSDevice, key: Any) -> None:
    assert reason_of(ios_device, ios_device.assert_(CDH), public_key=key) == Reason.MALFORMED_CERTIFICATE


def test_stored_key_must_be_p256(ios_device: IOSDevice) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    assert reason_of(ios_device, ios_device.assert_(CDH), public_key=p384) == Reason.MALFORMED_CERTIFICATE
    with pytest.raises(AttestationError):
        load_public_key(p384)


# --------------------------------------------------------------------- steps 1-3: signature over the nonce
def test_other_client_data_is_signature_invalid(ios_device: IOSDevice) -> None:
    assertion = ios_device.assert_(CDH)
    assert reason_of(ios_device, assertion, client_data_hash=hashlib.sha256(b"other").digest()) == Reason.SIGNATURE_INVALID


def test_other_key_is_signature_invalid(ios_device: IOSDevice) -> None:
    assertion = ios_device.assert_(CDH, signing_key=ec.generate_private_key(ec.SECP256R1()))
    assert reason_of(ios_device, assertion) == Reason.SIGNATURE_INVALID


def test_signature_over_raw_data_instead_of_nonce_is_invalid(ios_device: IOSDevice) -> None:
    from cryptography.hazmat.primitives import hashes

    assertion = ios_device.assert_(CDH)
    auth = cbor2.loads(assertion)["authenticatorData"]
    wrong = ios_device.key.sign(auth + CDH, ec.ECDSA(hashes.SHA256()))
    assert reason_of(ios_device, cbor2.dumps({"signature": wrong, "authenticatorData": auth})) == Reason.SIGNATURE_INVALID


def test_garbage_signature_is_signature_invalid(ios_device: IOSDevice) -> None:
    assert reason_of(ios_device, ios_device.assert_(CDH, signature=b"\x30\x02\x00\x00")) == Reason.SIGNATURE_INVALID


def test_tampered_counter_is_signature_invalid(ios_device: IOSDevice) -> None:
    obj = cbor2.loads(ios_device.assert_(CDH))
    auth = bytearray(obj["authenticatorData"])
    auth[36] = 0x63
    obj["authenticatorData"] = bytes(auth)
    assert reason_of(ios_device, cbor2.dumps(obj)) == Reason.SIGNATURE_INVALID


# --------------------------------------------------------------------- step 4: app id
def test_other_app_is_app_id_mismatch(ios_device: IOSDevice) -> None:
    assertion = ios_device.assert_(CDH, app_id="ABCDE12345.com.attacker.app")
    assert reason_of(ios_device, assertion) == Reason.APP_ID_MISMATCH


# --------------------------------------------------------------------- step 5: counter
@pytest.mark.parametrize("previous", [5, 6], ids=["equal", "greater"])
def test_counter_not_increasing(ios_device: IOSDevice, previous: int) -> None:
    assertion = ios_device.assert_(CDH, counter=5)
    assert reason_of(ios_device, assertion, previous_counter=previous) == Reason.COUNTER_NOT_INCREASING
