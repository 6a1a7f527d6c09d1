"""The test PKI reproduces a real device's attestation leaf: compared with the Pixel 8a
(KeyMint 300, remotely provisioned) chain of the public vectors."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from attestation.android.chain import parse_chain
from attestation.android.keydescription import KEY_DESCRIPTION_OID, parse_key_description
from attestation.testing import google_pki as g

PIXEL = parse_chain(
    (Path(__file__).parent / "vectors" / "android" / "pixel8a-webauthn-android-key-chain.pem").read_text()
)
KEY = ec.generate_private_key(ec.SECP256R1())
OURS = parse_chain(g.to_pem(g.attestation_chain(KEY.public_key(), g.LeafSpec(challenge=hashlib.sha256(b"x").digest()))))


def _extensions(index: int, chain: list) -> list[tuple[str, bool]]:
    return [(e.oid.dotted_string, e.critical) for e in chain[index].cert.extensions]


def test_leaf_certificate_shape_matches_a_real_device() -> None:
    real, ours = PIXEL[0].cert, OURS[0].cert
    assert ours.subject == real.subject
    assert _extensions(0, OURS) == _extensions(0, PIXEL) == [("2.5.29.15", True), (KEY_DESCRIPTION_OID, False)]
    assert ours.signature_algorithm_oid == real.signature_algorithm_oid
    assert ours.serial_number == real.serial_number == 1
    assert (ours.not_valid_before_utc, ours.not_valid_after_utc) == (
        real.not_valid_before_utc,
        real.not_valid_after_utc,
    )
    assert ours.version == real.version


def test_key_description_layout_matches_a_real_device() -> None:
    real = parse_key_description(PIXEL[0].extension_value(KEY_DESCRIPTION_OID) or b"")
    ours = parse_key_description(OURS[0].extension_value(KEY_DESCRIPTION_OID) or b"")
    assert (ours.attestation_version, ours.keymaster_version) == (real.attestation_version, real.keymaster_version)
    assert ours.software_enforced.tags == real.software_enforced.tags == (701, 709)
    auth_tags = {503, 504, 505}  # noAuthRequired vs userAuthType + authTimeout: per key
    assert set(ours.hardware_enforced.tags) - auth_tags == set(real.hardware_enforced.tags) - auth_tags
    for name in ("purposes", "algorithm", "ec_curve", "origin"):
        assert getattr(ours.hardware_enforced, name) == getattr(real.hardware_enforced, name), name
    ours_root, real_root = ours.hardware_enforced.root_of_trust, real.hardware_enforced.root_of_trust
    assert ours_root is not None and real_root is not None
    assert len(ours_root.verified_boot_key) == len(real_root.verified_boot_key)


def test_intermediate_is_a_ca_like_googles() -> None:
    assert ("2.5.29.19", True) in _extensions(1, OURS) and ("2.5.29.15", True) in _extensions(1, OURS)
