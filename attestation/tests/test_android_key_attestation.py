"""Android Key Attestation verifier: each check fails for exactly its own reason (test PKI),
and the public real chains behave as ``vectors/INDEX.md`` says."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.android import chain as chain_steps
from attestation.android.key_attestation import AndroidKeyPolicy, verify_key_attestation
from attestation.errors import AttestationError, Reason
from attestation.testing import google_pki as g

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CHALLENGE = hashlib.sha256(b"binding").digest()
VECTORS = Path(__file__).parent / "vectors" / "android" / "google-android-key-attestation"
GOOGLE_ROOTS = sorted(str(p) for p in (Path(__file__).parents[1] / "certs" / "google").glob("*.pem"))
STRICT = AndroidKeyPolicy.build(package_name=g.TEST_PACKAGE, signing_cert_digests=[g.TEST_SIGNING_DIGEST])
KEY = ec.generate_private_key(ec.SECP256R1())


def chain(**spec: Any) -> str:
    return g.to_pem(g.attestation_chain(KEY.public_key(), g.LeafSpec(challenge=CHALLENGE).but(**spec)))


def verify(pem: str, *, policy: AndroidKeyPolicy = STRICT, now: dt.datetime = NOW, **kw: Any) -> Any:
    kw.setdefault("roots", g.test_trusted_roots())
    kw.setdefault("revoked", {})
    kw.setdefault("challenge", CHALLENGE)
    return verify_key_attestation(pem, now=now, policy=policy, **kw)


def reason_of(pem: str, **kw: Any) -> str:
    with pytest.raises(AttestationError) as info:
        verify(pem, **kw)
    return info.value.reason


def test_valid_chain_gives_key_and_all_facts() -> None:
    result = verify(chain())
    facts = result.facts()
    assert result.public_key.public_numbers() == KEY.public_key().public_numbers()
    assert facts["security_level"] == "TrustedEnvironment"
    assert facts["attestation_version"] == 300 and facts["keymint_version"] == 300
    assert facts["root_of_trust"]["verified_boot_state"] == "Verified"
    assert facts["root_of_trust"]["device_locked"] is True
    assert facts["packages"] == [[g.TEST_PACKAGE, 1]]
    assert facts["signing_cert_digests_hex"] == [g.TEST_SIGNING_DIGEST.hex()]
    assert (facts["os_version"], facts["os_patch_level"]) == (150000, 202510)
    assert (facts["vendor_patch_level"], facts["boot_patch_level"]) == (20251005, 20251005)
    assert facts["key_id"] == result.key_id and len(result.key_id) == 64


def test_strongbox_is_reported() -> None:
    assert verify(chain(attestation_security_level="StrongBox")).security_level == "StrongBox"


@pytest.mark.parametrize(
    ("spec", "policy", "reason"),
    [
        ({"challenge": b"other"}, STRICT, Reason.CHALLENGE_MISMATCH),
        ({"attestation_security_level": "Software"}, STRICT, Reason.SECURITY_LEVEL_INSUFFICIENT),
        ({"keymint_security_level": "Software"}, STRICT, Reason.SECURITY_LEVEL_INSUFFICIENT),
        ({"packages": (("com.evil.app", 1),)}, STRICT, Reason.PACKAGE_MISMATCH),
        ({"signing_cert_digests": (hashlib.sha256(b"evil").digest(),)}, STRICT, Reason.SIGNING_CERT_MISMATCH),
        (
            {"signing_cert_digests": (g.TEST_SIGNING_DIGEST, hashlib.sha256(b"x").digest())},
            STRICT,
            Reason.SIGNING_CERT_MISMATCH,
        ),
        ({"signing_cert_digests": ()}, STRICT, Reason.SIGNING_CERT_MISMATCH),
        ({"verified_boot_state": "Unverified"}, STRICT, Reason.BOOT_STATE_UNVERIFIED),
        ({"verified_boot_state": "SelfSigned"}, STRICT, Reason.BOOT_STATE_UNVERIFIED),
        (
            {"verified_boot_state": "Failed"},
            AndroidKeyPolicy.build(allow_unverified_boot=True),
            Reason.BOOT_STATE_UNVERIFIED,
        ),
        ({"include_root_of_trust": False}, STRICT, Reason.BOOT_STATE_UNVERIFIED),
        ({"device_locked": False}, STRICT, Reason.BOOTLOADER_UNLOCKED),
        ({"not_after": NOW - dt.timedelta(seconds=1)}, STRICT, Reason.CHAIN_EXPIRED),
        ({"not_before": NOW + dt.timedelta(seconds=1)}, STRICT, Reason.CHAIN_EXPIRED),
    ],
)
def test_each_check_fails_for_its_own_reason(spec: dict[str, Any], policy: AndroidKeyPolicy, reason: str) -> None:
    assert reason_of(chain(**spec), policy=policy) == reason


def test_policy_flags_relax_exactly_their_check() -> None:
    assert verify(chain(attestation_security_level="Software"), policy=AndroidKeyPolicy.build(allow_software=True))
    assert verify(chain(verified_boot_state="SelfSigned"), policy=AndroidKeyPolicy.build(allow_self_signed_boot=True))
    assert verify(chain(device_locked=False), policy=AndroidKeyPolicy.build(allow_unlocked_bootloader=True))
    assert verify(chain(packages=(("com.other", 1),)), policy=AndroidKeyPolicy())


def test_package_among_shared_uid_packages_is_accepted() -> None:
    assert verify(chain(packages=(("com.example.helper", 3), (g.TEST_PACKAGE, 1))))


def test_digest_spellings_are_equivalent() -> None:
    import base64

    for spelling in (
        g.TEST_SIGNING_DIGEST.hex(),
        base64.b64encode(g.TEST_SIGNING_DIGEST).decode(),
        base64.urlsafe_b64encode(g.TEST_SIGNING_DIGEST).decode().rstrip("="),
    ):
        assert verify(chain(), policy=AndroidKeyPolicy.build(signing_cert_digests=[spelling]))


def test_untrusted_root_is_refused() -> None:
    fake_root = g.make_ca("attacker-root", None, title=None)
    inter = g.make_ca("attacker-inter", fake_root)
    pem = g.to_pem(
        g.attestation_chain(KEY.public_key(), g.LeafSpec(challenge=CHALLENGE), intermediate=inter, root=fake_root)
    )
    assert reason_of(pem) == Reason.CHAIN_UNTRUSTED


def test_test_root_is_trusted_only_with_the_setting(settings: Any) -> None:
    settings.ATTESTATION_ANDROID_ROOT_CERTS = GOOGLE_ROOTS
    settings.ATTESTATION_ALLOW_TEST_ROOTS = False
    assert reason_of(chain(), roots=None) == Reason.CHAIN_UNTRUSTED
    settings.ATTESTATION_ALLOW_TEST_ROOTS = True
    assert verify(chain(), roots=None)


def test_configured_roots_replace_the_shipped_ones(settings: Any, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    path = tmp_path / "root.pem"
    path.write_bytes(g.test_root().cert.public_bytes(serialization.Encoding.PEM))
    settings.ATTESTATION_ALLOW_TEST_ROOTS = False
    settings.ATTESTATION_ANDROID_ROOT_CERTS = str(path)
    assert verify(chain(), roots=None)


def test_bad_signature_in_chain_is_untrusted() -> None:
    other = g.make_ca("intermediate-TEE-impostor", g.make_ca("other-root", None, title=None))
    leaf = g.make_leaf(KEY.public_key(), g.LeafSpec(challenge=CHALLENGE), other)
    pem = g.to_pem([leaf, g.test_intermediate().cert, g.test_root().cert])
    assert reason_of(pem) == Reason.CHAIN_UNTRUSTED


def test_leaf_key_cannot_sign_a_forged_attestation_below_it() -> None:
    """An attested key with PURPOSE_SIGN could sign a certificate with a fake KeyDescription:
    issuers must be CAs, and only the leaf may carry the extension."""
    real = g.attestation_chain(KEY.public_key(), g.LeafSpec(challenge=b"old", device_locked=False))
    forged_key = ec.generate_private_key(ec.SECP256R1())
    forged = g.make_leaf(forged_key.public_key(), g.LeafSpec(challenge=CHALLENGE), g.CA(KEY, real[0]))
    assert reason_of(g.to_pem([forged, *real])) == Reason.CHAIN_UNTRUSTED


def test_intermediate_with_key_description_is_refused() -> None:
    leaf_spec = g.LeafSpec(challenge=CHALLENGE)
    root = g.test_root()
    key = g._seeded_key("inter-with-ext", ec.SECP256R1())
    ext = x509.UnrecognizedExtension(
        x509.ObjectIdentifier(g.kd.KEY_DESCRIPTION_OID), g.key_description(leaf_spec).dump()
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(g._name("abcd", "TEE"))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(g.EPOCH)
        .not_valid_after(g.LEAF_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ext, critical=False)
        .sign(root.key, hashes.SHA384())
    )
    inter = g.CA(key, cert)
    assert (
        reason_of(g.to_pem(g.attestation_chain(KEY.public_key(), leaf_spec, intermediate=inter)))
        == Reason.CHAIN_UNTRUSTED
    )


def test_leaf_without_key_description_is_malformed() -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    inter = g.test_intermediate()
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(inter.cert.subject)
        .public_key(KEY.public_key())
        .serial_number(1)
        .not_valid_before(g.EPOCH)
        .not_valid_after(g.LEAF_NOT_AFTER)
        .sign(inter.key, hashes.SHA256())
    )
    pem = leaf.public_bytes(Encoding.PEM).decode() + g.to_pem([inter.cert, g.test_root().cert])
    assert reason_of(pem) == Reason.MALFORMED_EXTENSION


def test_garbage_extension_is_malformed() -> None:
    inter = g.test_intermediate()
    leaf = g.make_leaf(KEY.public_key(), g.LeafSpec(challenge=CHALLENGE), inter, extension_der=b"\x30\x03\x02\x01")
    assert reason_of(g.to_pem([leaf, inter.cert, g.test_root().cert])) == Reason.MALFORMED_EXTENSION


def test_lone_certificate_is_untrusted() -> None:
    assert reason_of(g.to_pem([g.test_root().cert])) == Reason.CHAIN_UNTRUSTED


def test_expired_intermediate() -> None:
    inter = g.make_ca("short-lived", g.test_root(), not_after=NOW - dt.timedelta(days=1))
    pem = g.to_pem(g.attestation_chain(KEY.public_key(), g.LeafSpec(challenge=CHALLENGE), intermediate=inter))
    assert reason_of(pem) == Reason.CHAIN_EXPIRED


@pytest.mark.parametrize("position", [0, 1])
def test_revoked_or_suspended_serial(position: int) -> None:
    pem = chain(serial=0x0ABCDEF)
    certs = chain_steps.parse_chain(pem)
    for status in ("REVOKED", "SUSPENDED"):
        revoked = {certs[position].serial_hex: status}
        assert reason_of(pem, revoked=revoked) == Reason.CERTIFICATE_REVOKED


@pytest.mark.django_db
def test_revocation_list_from_file_while_the_database_holds_none(settings: Any, tmp_path: Path) -> None:
    """An operator's mirror at ``ATTESTATION_ANDROID_REVOCATION_LIST_PATH`` seeds an empty table
    (the stored list itself: test_android_revocation_store.py)."""
    import json

    path = tmp_path / "status.json"
    path.write_text(json.dumps({"entries": {"00ABCDEF": {"status": "REVOKED", "reason": "KEY_COMPROMISE"}}}))
    settings.ATTESTATION_ANDROID_REVOCATION_LIST_PATH = str(path)
    assert reason_of(chain(serial=0xABCDEF), revoked=None) == Reason.CERTIFICATE_REVOKED
    assert verify(chain(serial=0xABCDEE), revoked=None)


def test_shipped_revocation_list_is_valid_and_empty() -> None:
    from attestation.android.revocation import load_status_list

    path = Path(__file__).parents[1] / "data" / "android-attestation-status.json"
    assert load_status_list(path) == {}


# ------------------------------------------------------------------ real vectors
LAX = AndroidKeyPolicy.build(allow_unverified_boot=True, allow_unlocked_bootloader=True)
THEN = dt.datetime(2020, 1, 1, tzinfo=UTC)


def real_chain(name: str) -> str:
    return "".join((VECTORS / f"algorithm_{name}" / f"cert{i}.pem").read_text().strip() + "\n" for i in range(4))


def google_roots() -> list[chain_steps.TrustedRoot]:
    return chain_steps.load_roots(GOOGLE_ROOTS)


@pytest.mark.parametrize("name", ["EC_SecurityLevel_TEE", "RSA_SecurityLevel_TEE"])
def test_real_tee_chains_verify_at_their_time(name: str) -> None:
    result = verify(real_chain(name), policy=LAX, now=THEN, challenge=b"abc", roots=google_roots())
    facts = result.facts()
    assert (facts["attestation_version"], facts["keymint_version"]) == (3, 4)
    assert facts["security_level"] == "TrustedEnvironment"
    assert facts["root_of_trust"]["verified_boot_state"] == "Unverified"
    assert ["android", 29] in facts["packages"]
    assert facts["root_key_sha256"].startswith("feb2ea7551ee316e")


@pytest.mark.parametrize("name", ["EC_SecurityLevel_TEE", "RSA_SecurityLevel_TEE"])
def test_real_tee_chains_fail_after_the_2016_root_expired(name: str) -> None:
    after = dt.datetime(2026, 5, 24, 16, 28, 53, tzinfo=UTC)
    assert (
        reason_of(real_chain(name), policy=LAX, now=after, challenge=b"abc", roots=google_roots())
        == Reason.CHAIN_EXPIRED
    )
    # Pinned-key dating (Java PKIX semantics) keeps them valid until the intermediates expire.
    assert verify(
        real_chain(name), policy=LAX, now=after, challenge=b"abc", roots=google_roots(), root_validity="pinned"
    )
    late = dt.datetime(2028, 3, 19, tzinfo=UTC)
    assert (
        reason_of(
            real_chain(name), policy=LAX, now=late, challenge=b"abc", roots=google_roots(), root_validity="pinned"
        )
        == Reason.CHAIN_EXPIRED
    )


@pytest.mark.parametrize("name", ["EC_SecurityLevel_TEE", "RSA_SecurityLevel_TEE"])
def test_real_chains_fail_a_locked_verified_boot_policy(name: str) -> None:
    got = reason_of(real_chain(name), policy=AndroidKeyPolicy(), now=THEN, challenge=b"abc", roots=google_roots())
    assert got == Reason.BOOT_STATE_UNVERIFIED
    unlocked = AndroidKeyPolicy.build(allow_unverified_boot=True)
    assert (
        reason_of(real_chain(name), policy=unlocked, now=THEN, challenge=b"abc", roots=google_roots())
        == Reason.BOOTLOADER_UNLOCKED
    )


def test_real_chain_wrong_challenge() -> None:
    assert (
        reason_of(real_chain("EC_SecurityLevel_TEE"), policy=LAX, now=THEN, challenge=b"abd", roots=google_roots())
        == Reason.CHALLENGE_MISMATCH
    )


def test_four_rsa_roots_share_one_key_so_any_of_them_anchors_the_2016_chain() -> None:
    roots = google_roots()
    rsa = [r for r in roots if "RSA" in r.source]
    assert len(rsa) == 4 and len({r.spki_der for r in rsa}) == 1
    only_2022 = [r for r in rsa if "2022" in r.source]
    assert verify(real_chain("RSA_SecurityLevel_TEE"), policy=LAX, now=THEN, challenge=b"abc", roots=only_2022)


def test_real_strongbox_rsa_chain_is_not_google_rooted() -> None:
    for now in (THEN, NOW):
        assert (
            reason_of(
                real_chain("RSA_SecurityLevel_StrongBox"), policy=LAX, now=now, challenge=b"abc", roots=google_roots()
            )
            == Reason.CHAIN_UNTRUSTED
        )


def test_real_strongbox_ec_leaf_with_non_der_algorithm_is_refused() -> None:
    pem = real_chain("EC_SecurityLevel_StrongBox")
    leaf_der = chain_steps.split_pem(pem)[0]
    # the leaf's AlgorithmIdentifier is ecdsa-with-SHA256 followed by an explicit NULL
    assert bytes.fromhex("300c06082a8648ce3d0403020500") in leaf_der
    with pytest.raises(AttestationError) as info:
        chain_steps.parse_certificate(leaf_der)
    assert info.value.reason == Reason.MALFORMED_CERTIFICATE
    assert reason_of(pem, policy=LAX, now=THEN, challenge=b"abc", roots=google_roots()) == Reason.MALFORMED_CERTIFICATE


def test_shipped_roots_include_the_2025_ec_root() -> None:
    sources = [Path(r.source).name for r in google_roots()]
    assert any("2025-07-17-EC" in s for s in sources) and len(sources) == 5


PIXEL = (VECTORS.parent / "pixel8a-webauthn-android-key-chain.pem").read_text()
PIXEL_CHALLENGE = bytes.fromhex("5652e2dc45549a96f96afa225502f87fadc08a60bc021392c0be8c5062fd5f5e")


def test_real_pixel_8a_rkp_chain_passes_the_production_boot_policy() -> None:
    at = dt.datetime(2025, 1, 8, tzinfo=UTC)
    result = verify(
        PIXEL,
        policy=AndroidKeyPolicy.build(package_name="com.google.android.gms"),
        now=at,
        challenge=PIXEL_CHALLENGE,
        roots=google_roots(),
    )
    facts = result.facts()
    assert (facts["attestation_version"], facts["security_level"]) == (300, "TrustedEnvironment")
    assert facts["root_of_trust"]["verified_boot_state"] == "Verified" and facts["root_of_trust"]["device_locked"]
    assert (facts["os_patch_level"], facts["vendor_patch_level"]) == (202501, 20250105)
    assert len(facts["chain_serials"]) == 5


def test_real_pixel_8a_chain_fails_after_expiry_and_for_another_app() -> None:
    at = dt.datetime(2025, 1, 8, tzinfo=UTC)
    assert (
        reason_of(
            PIXEL,
            policy=AndroidKeyPolicy(),
            now=dt.datetime(2025, 2, 2, 10, 35, 28, tzinfo=UTC),
            challenge=PIXEL_CHALLENGE,
            roots=google_roots(),
        )
        == Reason.CHAIN_EXPIRED
    )
    assert (
        reason_of(PIXEL, policy=STRICT, now=at, challenge=PIXEL_CHALLENGE, roots=google_roots())
        == Reason.PACKAGE_MISMATCH
    )


def test_non_positive_serial_is_malformed() -> None:
    import base64

    ders = chain_steps.split_pem(chain(serial=1))
    version_and_serial = bytes.fromhex("a003020102020101")
    assert version_and_serial in ders[0]
    ders[0] = ders[0].replace(version_and_serial, bytes.fromhex("a003020102020181"), 1)  # serial -127
    pem = "".join(
        f"-----BEGIN CERTIFICATE-----\n{base64.b64encode(d).decode()}\n-----END CERTIFICATE-----\n" for d in ders
    )
    assert reason_of(pem) == Reason.MALFORMED_CERTIFICATE
