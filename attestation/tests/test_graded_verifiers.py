"""Issue 17 §1 in the pure verifiers: the graded policies accept the facts and report them,
and never relax an authenticity check (injected ``now``, stable reasons)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.android.key_attestation import AndroidKeyPolicy, verify_key_attestation
from attestation.android.play_integrity import IntegrityPolicy, check_verdict
from attestation.errors import AttestationError
from attestation.testing import google_pki as g

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
CHALLENGE = b"c" * 32
GRADED = AndroidKeyPolicy.graded(package_name=g.TEST_PACKAGE, signing_cert_digests=(g.TEST_SIGNING_DIGEST,),
                                 refuse_software=False, refuse_unverified_boot=False,
                                 refuse_unlocked_bootloader=False)


def chain(**leaf: Any) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return g.to_pem(g.attestation_chain(key.public_key(), g.LeafSpec(challenge=CHALLENGE).but(**leaf)))


def verify(pem: str, policy: AndroidKeyPolicy | None = None, challenge: bytes = CHALLENGE) -> Any:
    return verify_key_attestation(pem, challenge=challenge, now=NOW, policy=policy, roots=g.test_trusted_roots(),
                                  revoked={})


@pytest.mark.parametrize(("leaf", "reason"), [
    ({"verified_boot_state": "Unverified"}, "boot_state_unverified"),
    ({"verified_boot_state": "SelfSigned"}, "boot_state_unverified"),
    ({"device_locked": False}, "bootloader_unlocked"),
    ({"attestation_security_level": "Software"}, "security_level_insufficient"),
])
def test_strict_policy_refuses_and_graded_policy_reports(leaf: dict[str, Any], reason: str) -> None:
    pem = chain(**leaf)
    with pytest.raises(AttestationError) as info:
        verify(pem, AndroidKeyPolicy(package_name=g.TEST_PACKAGE))
    assert info.value.reason == reason
    facts = verify(pem, GRADED).facts()
    rot = facts["root_of_trust"]
    assert (rot["verified_boot_state"], rot["device_locked"], facts["security_level"]) == (
        leaf.get("verified_boot_state", "Verified"), leaf.get("device_locked", True),
        leaf.get("attestation_security_level", "TrustedEnvironment"))


@pytest.mark.parametrize(("leaf", "reason"), [
    ({"verified_boot_state": "Failed"}, "boot_state_unverified"),  # no genuine attestation says Failed
    ({"packages": (("com.example.evil", 1),)}, "package_mismatch"),
    ({"signing_cert_digests": (b"\x01" * 32,)}, "signing_certificate_mismatch"),
    ({"not_after": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}, "chain_expired"),
])
def test_graded_policy_keeps_every_authenticity_check(leaf: dict[str, Any], reason: str) -> None:
    with pytest.raises(AttestationError) as info:
        verify(chain(**leaf), GRADED)
    assert info.value.reason == reason


def test_graded_policy_keeps_the_challenge() -> None:
    with pytest.raises(AttestationError) as info:
        verify(chain(), GRADED, challenge=b"d" * 32)
    assert info.value.reason == "challenge_mismatch"


# ------------------------------------------------------------------ Play Integrity

LENIENT = IntegrityPolicy(package_name=g.TEST_PACKAGE, signing_cert_digests=(g.TEST_SIGNING_DIGEST,),
                          min_level=None, require_play_recognized=False, require_licensed=False)


def verdict(**forge: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"request_hash": "h", "timestamp_ms": int(NOW.timestamp() * 1000)}
    return g.make_verdict(**{**args, **forge})


def judge(value: dict[str, Any], policy: IntegrityPolicy) -> Any:
    return check_verdict(value, policy=policy, expected="h", kind="request_hash", now=NOW)


def test_lenient_integrity_policy_reports_what_the_strict_one_refuses() -> None:
    weak = verdict(device_verdicts=None, app_verdict="UNRECOGNIZED_VERSION", licensing="UNLICENSED")
    with pytest.raises(AttestationError) as info:
        judge(weak, IntegrityPolicy(package_name=g.TEST_PACKAGE))
    assert info.value.reason == "app_not_recognized"
    facts = judge(weak, LENIENT).facts
    assert facts["device_recognition_verdict"] == [] and facts["app_licensing_verdict"] == "UNLICENSED"
    assert facts["app_recognition_verdict"] == "UNRECOGNIZED_VERSION"


def test_unevaluated_app_without_certificate_is_not_a_mismatch_when_recognition_is_graded() -> None:
    unevaluated = verdict(app_verdict="UNEVALUATED")
    unevaluated["appIntegrity"] = {"appRecognitionVerdict": "UNEVALUATED"}
    assert judge(unevaluated, LENIENT).facts["app_recognition_verdict"] == "UNEVALUATED"
    with pytest.raises(AttestationError) as info:  # strict: refused for what it is, as before
        judge(unevaluated, IntegrityPolicy(package_name=g.TEST_PACKAGE, signing_cert_digests=(g.TEST_SIGNING_DIGEST,)))
    assert info.value.reason == "app_not_recognized"


@pytest.mark.parametrize(("forge", "reason"), [
    ({"request_hash": "other"}, "request_hash_mismatch"),
    ({"package_name": "com.example.evil"}, "package_mismatch"),
    ({"cert_digests": (b"\x02" * 32,)}, "signing_certificate_mismatch"),
    ({"testing": True}, "testing_response"),
    ({"timestamp_ms": int((NOW - dt.timedelta(minutes=10)).timestamp() * 1000)}, "verdict_stale"),
])
def test_lenient_integrity_policy_keeps_every_authenticity_check(forge: dict[str, Any], reason: str) -> None:
    with pytest.raises(AttestationError) as info:
        judge(verdict(**forge), LENIENT)
    assert info.value.reason == reason


def test_unknown_level_is_refused_when_the_policy_is_built() -> None:
    with pytest.raises(ValueError, match="unknown integrity level"):
        IntegrityPolicy(package_name="p", min_level="platinum")
