"""Refresh proof of possession: a signature by the attested key over ``binding.client_data()``."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from attestation.android.key_signature import load_public_key, verify_key_signature
from attestation.binding import RequestBinding, grant_hash
from attestation.errors import AttestationError, Reason
from core.encoding import b64url_encode as b64url

BINDING = RequestBinding("challenge-1", "mobile-app", "refresh_token", grant_hash("rt"), dpop_jkt="jkt")
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        .decode()
    )


def reason(key_pem: str, signature: str | bytes, binding: RequestBinding = BINDING) -> str:
    with pytest.raises(AttestationError) as info:
        verify_key_signature(load_public_key(key_pem), signature, binding)
    return info.value.reason


def test_ecdsa_sha256_over_client_data() -> None:
    signature = EC_KEY.sign(BINDING.client_data(), ec.ECDSA(hashes.SHA256()))
    verify_key_signature(load_public_key(pem(EC_KEY)), b64url(signature), BINDING)
    verify_key_signature(load_public_key(pem(EC_KEY)), signature, BINDING)


def test_rsa_pkcs1v15_sha256_over_client_data() -> None:
    signature = RSA_KEY.sign(BINDING.client_data(), padding.PKCS1v15(), hashes.SHA256())
    verify_key_signature(load_public_key(pem(RSA_KEY)), b64url(signature), BINDING)


def test_signature_over_the_hash_instead_of_client_data_fails() -> None:
    signature = EC_KEY.sign(BINDING.client_data_hash(), ec.ECDSA(hashes.SHA256()))
    assert reason(pem(EC_KEY), b64url(signature)) == Reason.SIGNATURE_INVALID


@pytest.mark.parametrize("field", ["challenge", "client_id", "grant_hash", "dpop_jkt"])
def test_any_changed_binding_field_fails(field: str) -> None:
    signature = b64url(EC_KEY.sign(BINDING.client_data(), ec.ECDSA(hashes.SHA256())))
    changed = dataclasses.replace(BINDING, **{field: "other"})  # type: ignore[arg-type]  # field is parametrized
    assert reason(pem(EC_KEY), signature, changed) == Reason.SIGNATURE_INVALID


def test_rsa_pss_is_not_accepted() -> None:
    signature = RSA_KEY.sign(BINDING.client_data(), padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    assert reason(pem(RSA_KEY), b64url(signature)) == Reason.SIGNATURE_INVALID


def test_other_key_types_are_refused() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    assert reason(pem(key), b64url(key.sign(BINDING.client_data()))) == Reason.SIGNATURE_INVALID


@pytest.mark.parametrize(
    ("signature", "code"),
    [
        ("", Reason.SIGNATURE_INVALID),
        ("***", Reason.MALFORMED_BASE64),
        ("A" * 2000, Reason.SIGNATURE_INVALID),
        ("AAAA", Reason.SIGNATURE_INVALID),
    ],
)
def test_malformed_signatures(signature: str, code: str) -> None:
    assert reason(pem(EC_KEY), signature) == code


def test_stored_key_must_be_pem() -> None:
    with pytest.raises(AttestationError) as info:
        load_public_key("not a key")
    assert info.value.reason == Reason.MALFORMED_CERTIFICATE
