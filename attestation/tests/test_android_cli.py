"""``manage.py verify_attestation android-key | play-integrity`` over every Android and Play
Integrity vector, and over test-PKI data; one JSON object with valid/reason/facts."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command

from attestation.testing import google_pki as g

pytestmark = pytest.mark.django_db  # without --revocation-list, android-key reads the stored list

VECTORS = Path(__file__).parent / "vectors"
CHAINS = VECTORS / "android" / "google-android-key-attestation"
PLAY = VECTORS / "playintegrity"
THEN = "2020-01-01T00:00:00Z"
AFTER_ROOT = "2026-05-25T00:00:00Z"
LAX = ["--allow-unverified-boot", "--allow-unlocked"]


def run(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("verify_attestation", *args, stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def chain_file(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.pem"
    path.write_text(
        "".join((CHAINS / f"algorithm_{name}" / f"cert{i}.pem").read_text().strip() + "\n" for i in range(4))
    )
    return str(path)


@pytest.mark.parametrize(
    ("name", "at", "flags", "reason"),
    [
        ("EC_SecurityLevel_TEE", THEN, LAX, None),
        ("RSA_SecurityLevel_TEE", THEN, LAX, None),
        ("EC_SecurityLevel_TEE", THEN, [], "boot_state_unverified"),
        ("RSA_SecurityLevel_TEE", THEN, ["--allow-unverified-boot"], "bootloader_unlocked"),
        ("EC_SecurityLevel_TEE", AFTER_ROOT, LAX, "chain_expired"),
        ("RSA_SecurityLevel_TEE", AFTER_ROOT, LAX, "chain_expired"),
        ("EC_SecurityLevel_TEE", AFTER_ROOT, [*LAX, "--root-validity", "pinned"], None),
        ("RSA_SecurityLevel_StrongBox", THEN, LAX, "chain_untrusted"),
        ("RSA_SecurityLevel_StrongBox", AFTER_ROOT, LAX, "chain_untrusted"),
        ("EC_SecurityLevel_StrongBox", THEN, LAX, "malformed_certificate"),
        ("EC_SecurityLevel_TEE", THEN, [*LAX, "--package", "com.example.vigil"], "package_mismatch"),
        ("EC_SecurityLevel_TEE", THEN, [*LAX, "--package", "com.android.keychain"], None),
        ("EC_SecurityLevel_TEE", THEN, [*LAX, "--signing-digest", "00" * 32], "signing_certificate_mismatch"),
        (
            "EC_SecurityLevel_TEE",
            THEN,
            [*LAX, "--signing-digest", "301aa3cb081134501c45f1422abc66c24224fd5ded5fdc8f17e697176fd866aa"],
            None,
        ),
    ],
)
def test_android_key_vectors(tmp_path: Path, name: str, at: str, flags: list[str], reason: str | None) -> None:
    verdict = run("android-key", chain_file(tmp_path, name), "--challenge", "616263", "--at", at, *flags)
    assert verdict["reason"] == reason and verdict["valid"] is (reason is None)
    if reason is None:
        assert verdict["facts"]["attestation_challenge_hex"] == "616263"
        assert verdict["facts"]["public_key"].startswith("-----BEGIN PUBLIC KEY-----")


def test_android_key_at_real_time_fails(tmp_path: Path) -> None:
    for name in ("EC_SecurityLevel_TEE", "RSA_SecurityLevel_TEE"):
        verdict = run("android-key", chain_file(tmp_path, name), "--challenge", "616263", *LAX)
        assert verdict["reason"] == "chain_expired"
        assert verdict["facts"]["verified_boot_state"] == "Unverified"  # decoded, unverified facts


def test_android_key_wrong_challenge_and_revocation_list(tmp_path: Path) -> None:
    pem = chain_file(tmp_path, "EC_SecurityLevel_TEE")
    assert run("android-key", pem, "--challenge", "616264", "--at", THEN, *LAX)["reason"] == "challenge_mismatch"
    listed = tmp_path / "status.json"
    listed.write_text(json.dumps({"entries": {"E8FA196314D2FA18": {"status": "REVOKED", "reason": "KEY_COMPROMISE"}}}))
    verdict = run("android-key", pem, "--challenge", "616263", "--at", THEN, *LAX, "--revocation-list", str(listed))
    assert verdict["reason"] == "certificate_revoked"
    sample = CHAINS / "status.json"  # Google's sample list lists none of these serials
    assert run("android-key", pem, "--challenge", "616263", "--at", THEN, *LAX, "--revocation-list", str(sample))[
        "valid"
    ]


def test_android_key_test_pki_with_test_root(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1())
    challenge = hashlib.sha256(b"c").digest()
    pem = tmp_path / "chain.pem"
    pem.write_text(g.to_pem(g.attestation_chain(key.public_key(), g.LeafSpec(challenge=challenge))))
    root = tmp_path / "root.pem"
    root.write_bytes(g.test_root().cert.public_bytes(serialization.Encoding.PEM))
    assert run("android-key", str(pem), "--challenge", challenge.hex())["reason"] == "chain_untrusted"
    verdict = run(
        "android-key", str(pem), "--challenge", challenge.hex(), "--root", str(root), "--package", g.TEST_PACKAGE
    )
    assert verdict["valid"] and verdict["facts"]["os_patch_level"] == 202510


def test_android_key_garbage(tmp_path: Path) -> None:
    path = tmp_path / "x.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    verdict = run("android-key", str(path), "--challenge", "00")
    assert verdict["reason"] == "malformed_certificate" and verdict["facts"] == {
        "decode_error": "malformed_certificate"
    }


# ------------------------------------------------------------------ play-integrity
SPIC = str(PLAY / "real-verdict-classic-spic-2025-05-16.json")
SPIC_ARGS = [
    "--package",
    "com.henrikherzig.playintegritychecker",
    "--nonce",
    "RXkwM08wMVBESmM1YzM4S2VEdXc2cVNvczVVU0FLOEYzRlZydUUyWVVRbFN3YWJhdE8=",
]
SPIC_AT = "2025-05-15T23:59:55Z"
DOCS = str(PLAY / "google-docs-example-verdict-standard.json")
DOCS_ARGS = ["--package", "com.package.name", "--request-hash", "aGVsbG8gd29scmQgdGhlcmU"]
DOCS_AT = "2023-02-06T03:43:40Z"


@pytest.mark.parametrize(
    ("file", "args", "reason"),
    [
        (SPIC, [*SPIC_ARGS, "--at", SPIC_AT], "app_not_recognized"),
        (SPIC, [*SPIC_ARGS, "--at", SPIC_AT, "--allow-unrecognized", "--policy", "strong"], "unlicensed"),
        (SPIC, [*SPIC_ARGS, "--at", SPIC_AT, "--allow-unrecognized", "--allow-unlicensed", "--policy", "strong"], None),
        (
            SPIC,
            [*SPIC_ARGS, "--at", "2025-05-16T00:40:00Z", "--allow-unrecognized", "--allow-unlicensed"],
            "verdict_stale",
        ),
        (
            SPIC,
            [
                *SPIC_ARGS,
                "--at",
                "2025-05-16T00:40:00Z",
                "--allow-unrecognized",
                "--allow-unlicensed",
                "--max-age",
                "3600",
            ],
            None,
        ),
        (SPIC, SPIC_ARGS, "verdict_stale"),
        (
            SPIC,
            ["--package", "com.henrikherzig.playintegritychecker", "--nonce", "d3Jvbmc", "--at", SPIC_AT],
            "nonce_mismatch",
        ),
        (SPIC, ["--package", "com.other", "--nonce", "x", "--at", SPIC_AT], "package_mismatch"),
        (DOCS, [*DOCS_ARGS, "--at", DOCS_AT], None),
        (DOCS, [*DOCS_ARGS, "--at", DOCS_AT, "--policy", "strong"], "integrity_verdict_insufficient"),
        (DOCS, [*DOCS_ARGS, "--at", DOCS_AT, "--refuse-apps-detected", "UNKNOWN_CAPTURING"], "app_access_risk"),
        (DOCS, [*DOCS_ARGS, "--at", DOCS_AT, "--signing-digest", "00" * 32], "signing_certificate_mismatch"),
        (
            DOCS,
            ["--package", "com.package.name", "--nonce", "aGVsbG8gd29scmQgdGhlcmU", "--at", DOCS_AT],
            "nonce_mismatch",
        ),
        (DOCS, DOCS_ARGS, "verdict_stale"),
    ],
)
def test_play_integrity_vectors(file: str, args: list[str], reason: str | None) -> None:
    verdict = run("play-integrity", file, *args)
    assert verdict["reason"] == reason and verdict["valid"] is (reason is None)


def test_play_integrity_token_with_keys(tmp_path: Path) -> None:
    from datetime import datetime

    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    token = g.encrypt_verdict(g.make_verdict(nonce="bm9uY2Utbm9uY2U", timestamp_ms=int(now.timestamp() * 1000)))
    path = tmp_path / "token.txt"
    path.write_text(token + "\n")
    dec, ver = g.play_keys_b64()
    base = [
        "play-integrity",
        str(path),
        "--package",
        g.TEST_PACKAGE,
        "--nonce",
        "bm9uY2Utbm9uY2U",
        "--at",
        now.isoformat(),
    ]
    verdict = run(*base, "--decryption-key", dec, "--verification-key", ver)
    assert verdict["valid"] and verdict["facts"]["sdk_version"] == 35
    wrong = "A" * 43 + "="
    assert run(*base, "--decryption-key", wrong, "--verification-key", ver)["reason"] == "integrity_token_invalid"
    assert run(*base, "--decryption-key", dec)["reason"] == "malformed_token"
    assert run(*base)["reason"] == "malformed_token"  # a token without keys is not a verdict JSON


def test_play_integrity_google_response_wrapper(tmp_path: Path) -> None:
    docs = json.loads(Path(DOCS).read_text())["verdict"]
    path = tmp_path / "response.json"
    path.write_text(json.dumps({"tokenPayloadExternal": docs}))
    assert run("play-integrity", str(path), *DOCS_ARGS, "--at", DOCS_AT)["valid"]


def test_android_key_pixel_8a_vector() -> None:
    pem = str(VECTORS / "android" / "pixel8a-webauthn-android-key-chain.pem")
    challenge = "5652e2dc45549a96f96afa225502f87fadc08a60bc021392c0be8c5062fd5f5e"
    ok = run(
        "android-key",
        pem,
        "--challenge",
        challenge,
        "--package",
        "com.google.android.gms",
        "--at",
        "2025-01-08T00:00:00Z",
    )
    assert ok["valid"] and ok["facts"]["keymint_version"] == 300
    assert run("android-key", pem, "--challenge", challenge)["reason"] == "chain_expired"
