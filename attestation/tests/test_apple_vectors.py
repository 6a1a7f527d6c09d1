"""Real App Attest vectors (Apple's 2026 sample, veehaitch iOS 14.x, uebelack) verify with the
shipped Apple root at their recorded time and fail once the certificates have expired."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from attestation.apple.assertion import verify_assertion
from attestation.apple.attestation import AppleAttestationResult, verify_attestation
from attestation.errors import AttestationError, Reason

from .apple_vectors import AssertionVector, AttestationVector, assertion_vectors, attestation_vectors, parse_time

ATTESTATIONS = attestation_vectors()
ASSERTIONS = assertion_vectors()


def _verify(v: AttestationVector, **overrides: Any) -> AppleAttestationResult:
    kwargs: dict[str, Any] = {
        "app_id": v.app_id,
        "environment": v.environment,
        "client_data_hash": v.client_data_hash,
        "now": v.now,
        "key_id": v.key_id,
    }
    kwargs.update(overrides)
    return verify_attestation(v.attestation, **kwargs)


def test_every_vector_is_present() -> None:
    assert len(ATTESTATIONS) == 10
    assert len(ASSERTIONS) == 7


@pytest.mark.parametrize("vector", ATTESTATIONS, ids=lambda v: v.name)
def test_real_attestation_verifies_at_recorded_time(vector: AttestationVector) -> None:
    result = _verify(vector)
    assert result.key_id == vector.key_id
    assert result.counter == 0
    assert result.receipt
    assert "BEGIN PUBLIC KEY" in result.public_key_pem


@pytest.mark.parametrize("vector", ATTESTATIONS, ids=lambda v: v.name)
def test_real_attestation_is_expired_today(vector: AttestationVector) -> None:
    with pytest.raises(AttestationError) as exc:
        _verify(vector, now=datetime.now(UTC))
    assert exc.value.reason == Reason.CHAIN_EXPIRED


@pytest.mark.parametrize("vector", ATTESTATIONS, ids=lambda v: v.name)
def test_real_attestation_wrong_challenge_is_nonce_mismatch(vector: AttestationVector) -> None:
    with pytest.raises(AttestationError) as exc:
        _verify(vector, client_data_hash=hashlib.sha256(b"another challenge").digest())
    assert exc.value.reason == Reason.NONCE_MISMATCH


@pytest.mark.parametrize("vector", ATTESTATIONS, ids=lambda v: v.name)
def test_real_attestation_other_environment_is_aaguid_mismatch(vector: AttestationVector) -> None:
    other = "production" if vector.environment == "development" else "development"
    with pytest.raises(AttestationError) as exc:
        _verify(vector, environment=other)
    assert exc.value.reason == Reason.AAGUID_MISMATCH


@pytest.mark.parametrize("vector", ATTESTATIONS, ids=lambda v: v.name)
def test_real_attestation_other_app_is_app_id_mismatch(vector: AttestationVector) -> None:
    with pytest.raises(AttestationError) as exc:
        _verify(vector, app_id=vector.app_id + ".other")
    assert exc.value.reason == Reason.APP_ID_MISMATCH


@pytest.mark.parametrize("vector", ATTESTATIONS, ids=lambda v: v.name)
def test_real_attestation_other_key_id_is_key_id_mismatch(vector: AttestationVector) -> None:
    with pytest.raises(AttestationError) as exc:
        _verify(vector, key_id=hashlib.sha256(b"another key").digest())
    assert exc.value.reason == Reason.KEY_ID_MISMATCH


def test_apple_2026_sample_needs_the_raw_challenge_not_its_hash() -> None:
    vector = next(v for v in ATTESTATIONS if v.name == "apple-guide-2026")
    with pytest.raises(AttestationError) as exc:
        _verify(vector, client_data_hash=hashlib.sha256(b"example_server_challenge").digest())
    assert exc.value.reason == Reason.NONCE_MISMATCH


def test_apple_2026_sample_expires_after_leaf_not_after() -> None:
    vector = next(v for v in ATTESTATIONS if v.name == "apple-guide-2026")
    _verify(vector, now=parse_time("2026-04-23T18:13:11Z"))
    with pytest.raises(AttestationError) as exc:
        _verify(vector, now=parse_time("2026-04-23T18:13:13Z"))
    assert exc.value.reason == Reason.CHAIN_EXPIRED


def test_apple_2026_sample_exposes_its_unflagged_authdata_extensions() -> None:
    vector = next(v for v in ATTESTATIONS if v.name == "apple-guide-2026")
    facts = _verify(vector).facts
    assert facts["authenticator_extensions"] == {
        "apple_bundle_version_01": "1",
        "apple_validation_category_01": "01000000",
    }
    assert facts["flags"] == 0x40


def test_real_attestation_is_untrusted_without_the_apple_root(allow_test_roots: None) -> None:
    from attestation.testing.apple_pki import test_root

    vector = ATTESTATIONS[0]
    with pytest.raises(AttestationError) as exc:
        _verify(vector, roots=[test_root().cert])
    assert exc.value.reason == Reason.CHAIN_UNTRUSTED


def test_apple_root_certs_setting_replaces_the_shipped_root(settings: Any, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    from attestation.testing.apple_pki import test_root

    pem = tmp_path / "other.pem"
    pem.write_bytes(test_root().cert.public_bytes(Encoding.PEM))
    settings.ATTESTATION_APPLE_ROOT_CERTS = str(pem)
    with pytest.raises(AttestationError) as exc:
        _verify(ATTESTATIONS[0])
    assert exc.value.reason == Reason.CHAIN_UNTRUSTED


@pytest.mark.parametrize("vector", ASSERTIONS, ids=lambda v: v.name)
def test_real_assertion_verifies(vector: AssertionVector) -> None:
    result = verify_assertion(
        vector.assertion,
        public_key=vector.public_key_pem,
        app_id=vector.app_id,
        client_data_hash=vector.client_data_hash,
        previous_counter=0,
    )
    assert result.counter == vector.counter == 1
    assert result.flags == 0x40


@pytest.mark.parametrize("vector", ASSERTIONS, ids=lambda v: v.name)
def test_real_assertion_tampered_client_data_is_signature_invalid(vector: AssertionVector) -> None:
    with pytest.raises(AttestationError) as exc:
        verify_assertion(
            vector.assertion,
            public_key=vector.public_key_pem,
            app_id=vector.app_id,
            client_data_hash=hashlib.sha256(b"wurzelpfropf!").digest(),
            previous_counter=0,
        )
    assert exc.value.reason == Reason.SIGNATURE_INVALID


@pytest.mark.parametrize("vector", ASSERTIONS, ids=lambda v: v.name)
def test_real_assertion_replayed_is_counter_not_increasing(vector: AssertionVector) -> None:
    with pytest.raises(AttestationError) as exc:
        verify_assertion(
            vector.assertion,
            public_key=vector.public_key_pem,
            app_id=vector.app_id,
            client_data_hash=vector.client_data_hash,
            previous_counter=1,
        )
    assert exc.value.reason == Reason.COUNTER_NOT_INCREASING


def test_real_assertion_signature_is_over_the_nonce_not_the_raw_data() -> None:
    """Trap: verifying ECDSA-SHA256 over authenticatorData‖clientDataHash directly fails."""
    import cbor2
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    vector = ASSERTIONS[0]
    obj = cbor2.loads(vector.assertion)
    key = load_pem_public_key(vector.public_key_pem.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    with pytest.raises(InvalidSignature):
        key.verify(obj["signature"], obj["authenticatorData"] + vector.client_data_hash, ec.ECDSA(hashes.SHA256()))
    nonce = hashlib.sha256(obj["authenticatorData"] + vector.client_data_hash).digest()
    key.verify(obj["signature"], nonce, ec.ECDSA(hashes.SHA256()))
