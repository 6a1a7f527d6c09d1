"""Play Integrity: classic token decoding and every verdict check, each failing for its own
reason; the public verdicts behave as ``vectors/INDEX.md`` says."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.android.play_integrity import (
    IntegrityPolicy,
    check_verdict,
    load_play_keys,
    play_keys_from_raw,
    verify_classic_token,
)
from attestation.errors import AttestationError, Reason
from attestation.testing import google_pki as g

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
EXPECTED = base64.urlsafe_b64encode(hashlib.sha256(b"binding").digest()).rstrip(b"=").decode()
POLICY = IntegrityPolicy(package_name=g.TEST_PACKAGE, signing_cert_digests=(g.TEST_SIGNING_DIGEST,))
VECTORS = Path(__file__).parent / "vectors" / "playintegrity"


def verdict(**forge: Any) -> dict[str, Any]:
    forge.setdefault("timestamp_ms", str(NOW_MS - 2000))
    if "request_hash" not in forge:
        forge.setdefault("nonce", EXPECTED)
    return g.make_verdict(**forge)


def reason_of(
    v: dict[str, Any],
    *,
    policy: IntegrityPolicy = POLICY,
    kind: str = "nonce",
    expected: str = EXPECTED,
    now: dt.datetime = NOW,
) -> str:
    with pytest.raises(AttestationError) as info:
        check_verdict(v, policy=policy, expected=expected, kind=kind, now=now)
    return info.value.reason


def test_valid_verdict_facts() -> None:
    result = check_verdict(verdict(), policy=POLICY, expected=EXPECTED, kind="nonce", now=NOW)
    assert result.device_verdicts[-1] == "MEETS_STRONG_INTEGRITY"
    assert result.facts["sdk_version"] == 35
    assert result.facts["recent_device_activity"] == "LEVEL_1"
    assert result.facts["play_protect_verdict"] == "NO_ISSUES"
    assert result.facts["apps_detected"] == ["KNOWN_INSTALLED"]
    assert result.facts["request_kind"] == "nonce"


@pytest.mark.parametrize("stamp", [NOW_MS - 1000, str(NOW_MS - 1000)])
def test_timestamp_as_number_or_string(stamp: Any) -> None:
    assert check_verdict(verdict(timestamp_ms=stamp), policy=POLICY, expected=EXPECTED, kind="nonce", now=NOW)


def test_padded_nonce_matches_unpadded() -> None:
    assert check_verdict(verdict(nonce=EXPECTED + "="), policy=POLICY, expected=EXPECTED, kind="nonce", now=NOW)


@pytest.mark.parametrize(
    ("forge", "policy", "reason"),
    [
        ({"package_name": "com.evil"}, POLICY, Reason.PACKAGE_MISMATCH),
        ({"nonce": "b3RoZXI"}, POLICY, Reason.NONCE_MISMATCH),
        ({"timestamp_ms": NOW_MS - 301_000}, POLICY, Reason.VERDICT_STALE),
        ({"timestamp_ms": NOW_MS + 61_000}, POLICY, Reason.VERDICT_STALE),
        ({"testing": True}, POLICY, Reason.TESTING_RESPONSE),
        ({"app_verdict": "UNRECOGNIZED_VERSION"}, POLICY, Reason.APP_NOT_RECOGNIZED),
        ({"app_verdict": "UNEVALUATED"}, POLICY, Reason.APP_NOT_RECOGNIZED),
        ({"cert_digests": (hashlib.sha256(b"evil").digest(),)}, POLICY, Reason.SIGNING_CERT_MISMATCH),
        ({"cert_digests": ()}, POLICY, Reason.SIGNING_CERT_MISMATCH),
        ({"device_verdicts": None}, POLICY, Reason.INTEGRITY_VERDICT_INSUFFICIENT),
        ({"device_verdicts": ()}, POLICY, Reason.INTEGRITY_VERDICT_INSUFFICIENT),
        ({"device_verdicts": ("MEETS_BASIC_INTEGRITY",)}, POLICY, Reason.INTEGRITY_VERDICT_INSUFFICIENT),
        ({"device_verdicts": ("MEETS_VIRTUAL_INTEGRITY",)}, POLICY, Reason.INTEGRITY_VERDICT_INSUFFICIENT),
        (
            {"device_verdicts": ("MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY")},
            IntegrityPolicy(package_name=g.TEST_PACKAGE, min_level="strong"),
            Reason.INTEGRITY_VERDICT_INSUFFICIENT,
        ),
        ({"licensing": "UNLICENSED"}, POLICY, Reason.UNLICENSED),
        ({"licensing": "UNEVALUATED"}, POLICY, Reason.UNLICENSED),
    ],
)
def test_each_check_fails_for_its_own_reason(forge: dict[str, Any], policy: IntegrityPolicy, reason: str) -> None:
    assert reason_of(verdict(**forge), policy=policy) == reason


def test_app_integrity_package_name_must_match() -> None:
    v = verdict()
    v["appIntegrity"]["packageName"] = "com.evil"
    assert reason_of(v) == Reason.PACKAGE_MISMATCH


def test_request_hash_for_standard_requests() -> None:
    v = verdict(request_hash=EXPECTED)
    assert check_verdict(v, policy=POLICY, expected=EXPECTED, kind="request_hash", now=NOW)
    assert reason_of(v, kind="request_hash", expected=EXPECTED + "x") == Reason.REQUEST_HASH_MISMATCH
    # a classic nonce never satisfies a standard request, nor the reverse
    assert reason_of(verdict(), kind="request_hash") == Reason.REQUEST_HASH_MISMATCH
    assert reason_of(v, kind="nonce") == Reason.NONCE_MISMATCH


def test_levels_accept_stronger_verdicts() -> None:
    for level, verdicts in [
        ("basic", ("MEETS_BASIC_INTEGRITY",)),
        ("device", ("MEETS_STRONG_INTEGRITY",)),
        ("strong", ("MEETS_STRONG_INTEGRITY",)),
    ]:
        policy = IntegrityPolicy(package_name=g.TEST_PACKAGE, min_level=level)
        assert check_verdict(verdict(device_verdicts=verdicts), policy=policy, expected=EXPECTED, kind="nonce", now=NOW)


def test_policy_flags_relax_exactly_their_check() -> None:
    relaxed = IntegrityPolicy(
        package_name=g.TEST_PACKAGE, require_play_recognized=False, require_licensed=False, allow_testing=True
    )
    v = verdict(app_verdict="UNEVALUATED", licensing="UNEVALUATED", testing=True)
    assert check_verdict(v, policy=relaxed, expected=EXPECTED, kind="nonce", now=NOW)


def test_refused_apps_detected() -> None:
    policy = IntegrityPolicy(package_name=g.TEST_PACKAGE, refused_apps_detected=frozenset({"KNOWN_INSTALLED"}))
    assert reason_of(verdict(), policy=policy) == Reason.APP_ACCESS_RISK


@pytest.mark.parametrize(
    "broken", [{"requestDetails": []}, {"requestDetails": {"requestPackageName": g.TEST_PACKAGE, "nonce": EXPECTED}}]
)
def test_malformed_request_details(broken: dict[str, Any]) -> None:
    assert reason_of({**verdict(), **broken}) in {Reason.MALFORMED_TOKEN}


def test_boolean_timestamp_is_malformed() -> None:
    v = verdict()
    v["requestDetails"]["timestampMillis"] = True
    assert reason_of(v) == Reason.MALFORMED_TOKEN


# ------------------------------------------------------------------ classic tokens
def keys() -> Any:
    return load_play_keys(*g.play_keys_b64())


def test_classic_token_roundtrip_with_console_keys() -> None:
    token = g.encrypt_verdict(verdict())
    result = verify_classic_token(token, keys=keys(), policy=POLICY, expected_nonce=EXPECTED, now=NOW)
    assert result.facts["app_licensing_verdict"] == "LICENSED"


def test_classic_token_headers_are_googles() -> None:
    token = g.encrypt_verdict(verdict())
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "A256KW", "enc": "A256GCM"}
    assert len(token.split(".")) == 5


def test_raw_keys_as_stored_by_the_registry() -> None:
    aes, spki = (base64.b64decode(k) for k in g.play_keys_b64())
    token = g.encrypt_verdict(verdict())
    assert verify_classic_token(
        token, keys=play_keys_from_raw(aes, spki), policy=POLICY, expected_nonce=EXPECTED, now=NOW
    )


def test_wrong_decryption_key_is_invalid() -> None:
    token = g.encrypt_verdict(verdict(), decryption_key=b"\x01" * 32)
    with pytest.raises(AttestationError) as info:
        verify_classic_token(token, keys=keys(), policy=POLICY, expected_nonce=EXPECTED, now=NOW)
    assert info.value.reason == Reason.INTEGRITY_TOKEN_INVALID


def test_wrong_signing_key_is_invalid() -> None:
    token = g.encrypt_verdict(verdict(), signing_key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(AttestationError) as info:
        verify_classic_token(token, keys=keys(), policy=POLICY, expected_nonce=EXPECTED, now=NOW)
    assert info.value.reason == Reason.INTEGRITY_TOKEN_INVALID


def test_unsigned_inner_jws_is_refused() -> None:
    from joserfc import jwe
    from joserfc.jwk import OctKey

    body = base64.urlsafe_b64encode(json.dumps(verdict()).encode()).rstrip(b"=").decode()
    inner = f"eyJhbGciOiJub25lIn0.{body}."
    token = jwe.encrypt_compact(
        {"alg": "A256KW", "enc": "A256GCM"},
        inner,
        OctKey.import_key(g.play_decryption_key_raw()),
        algorithms=["A256KW", "A256GCM"],
    )
    with pytest.raises(AttestationError) as info:
        verify_classic_token(token, keys=keys(), policy=POLICY, expected_nonce=EXPECTED, now=NOW)
    assert info.value.reason == Reason.INTEGRITY_TOKEN_INVALID


def test_other_jwe_algorithms_are_refused() -> None:
    from joserfc import jwe
    from joserfc.jwk import OctKey

    token = jwe.encrypt_compact(
        {"alg": "dir", "enc": "A256GCM"},
        "x",
        OctKey.import_key(g.play_decryption_key_raw()),
        algorithms=["dir", "A256GCM"],
    )
    with pytest.raises(AttestationError) as info:
        verify_classic_token(token, keys=keys(), policy=POLICY, expected_nonce=EXPECTED, now=NOW)
    assert info.value.reason == Reason.INTEGRITY_TOKEN_INVALID


@pytest.mark.parametrize(
    "bad", [("", "x"), ("AAAA", g.play_keys_b64()[1]), (g.play_keys_b64()[0], "AAAA"), ("%%%", "%%%")]
)
def test_bad_console_keys(bad: tuple[str, str]) -> None:
    with pytest.raises(AttestationError) as info:
        load_play_keys(*bad)
    assert info.value.reason == Reason.MALFORMED_BASE64


# ------------------------------------------------------------------ public vectors
def load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text())


SPIC = load("real-verdict-classic-spic-2025-05-16.json")
SPIC_NOW = dt.datetime(2025, 5, 15, 23, 59, 55, tzinfo=UTC)
SPIC_POLICY = IntegrityPolicy(package_name="com.henrikherzig.playintegritychecker")
SPIC_NONCE = SPIC["verify_params"]["expected_nonce"]


def test_real_classic_verdict_fails_play_recognized() -> None:
    assert (
        reason_of(SPIC["verdict"], policy=SPIC_POLICY, expected=SPIC_NONCE, now=SPIC_NOW) == Reason.APP_NOT_RECOGNIZED
    )


def test_real_classic_verdict_request_and_device_pass_then_licensing_fails() -> None:
    relaxed = IntegrityPolicy(package_name=SPIC_POLICY.package_name, require_play_recognized=False, min_level="strong")
    assert reason_of(SPIC["verdict"], policy=relaxed, expected=SPIC_NONCE, now=SPIC_NOW) == Reason.UNLICENSED
    lax = IntegrityPolicy(
        package_name=SPIC_POLICY.package_name, require_play_recognized=False, require_licensed=False, min_level="strong"
    )
    result = check_verdict(SPIC["verdict"], policy=lax, expected=SPIC_NONCE, kind="nonce", now=SPIC_NOW)
    assert result.timestamp == dt.datetime(2025, 5, 15, 23, 59, 47, 612000, tzinfo=UTC)


def test_real_classic_verdict_is_stale_now_and_wrong_nonce_fails() -> None:
    assert reason_of(SPIC["verdict"], policy=SPIC_POLICY, expected=SPIC_NONCE, now=NOW) == Reason.VERDICT_STALE
    assert reason_of(SPIC["verdict"], policy=SPIC_POLICY, expected="x" * 20, now=SPIC_NOW) == Reason.NONCE_MISMATCH


DOCS = load("google-docs-example-verdict-standard.json")
DOCS_NOW = dt.datetime(2023, 2, 6, 3, 43, 40, tzinfo=UTC)
DOCS_POLICY = IntegrityPolicy(package_name="com.package.name")


def test_docs_standard_verdict_is_valid() -> None:
    result = check_verdict(
        DOCS["verdict"], policy=DOCS_POLICY, expected="aGVsbG8gd29scmQgdGhlcmU", kind="request_hash", now=DOCS_NOW
    )
    assert result.facts["sdk_version"] == 33
    assert "UNKNOWN_CAPTURING" in result.facts["apps_detected"]


def test_docs_standard_verdict_fails_a_capturing_app_policy_and_real_now() -> None:
    capture = IntegrityPolicy(package_name="com.package.name", refused_apps_detected=frozenset({"UNKNOWN_CAPTURING"}))
    assert (
        reason_of(
            DOCS["verdict"], policy=capture, kind="request_hash", expected="aGVsbG8gd29scmQgdGhlcmU", now=DOCS_NOW
        )
        == Reason.APP_ACCESS_RISK
    )
    assert (
        reason_of(DOCS["verdict"], policy=DOCS_POLICY, kind="request_hash", expected="aGVsbG8gd29scmQgdGhlcmU", now=NOW)
        == Reason.VERDICT_STALE
    )
    # its certificateSha256Digest is a truncated placeholder: never a registered digest
    registered = IntegrityPolicy(package_name="com.package.name", signing_cert_digests=(g.TEST_SIGNING_DIGEST,))
    assert (
        reason_of(
            DOCS["verdict"], policy=registered, kind="request_hash", expected="aGVsbG8gd29scmQgdGhlcmU", now=DOCS_NOW
        )
        == Reason.SIGNING_CERT_MISMATCH
    )


def _check_against_schema(value: Any, schema: dict[str, Any], schemas: dict[str, Any], path: str) -> None:
    if "$ref" in schema:
        schema = schemas[schema["$ref"]]
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(value, dict), path
        for key, item in value.items():
            assert key in schema["properties"], f"{path}.{key} is not in Google's schema"
            _check_against_schema(item, schema["properties"][key], schemas, f"{path}.{key}")
    elif kind == "array":
        assert isinstance(value, list), path
        for item in value:
            _check_against_schema(item, schema["items"], schemas, path + "[]")
    elif kind == "string":
        assert isinstance(value, str), path
        if "enum" in schema:
            assert value in schema["enum"], f"{path}={value} is not a documented value"
    elif kind == "integer":
        assert isinstance(value, int), path
    elif kind == "boolean":
        assert isinstance(value, bool), path


def test_test_verdicts_follow_googles_schema() -> None:
    """Every field and enum value of the test verdicts exists in the discovery document
    (``timestampMillis`` is int64, which Google serialises as a string)."""
    schemas = load("google-discovery-playintegrity.v1.json")["schemas"]
    for v in (verdict(testing=False), verdict(request_hash=EXPECTED, testing=True)):
        _check_against_schema(v, {"$ref": "TokenPayloadExternal"}, schemas, "verdict")
    _check_against_schema(DOCS["verdict"], {"$ref": "TokenPayloadExternal"}, schemas, "docs")


def test_classic_token_inner_jws_header() -> None:
    from joserfc import jwe

    token = g.encrypt_verdict(verdict())
    inner = jwe.decrypt_compact(token, keys()[0], algorithms=["A256KW", "A256GCM"]).plaintext or b""
    header = json.loads(base64.urlsafe_b64decode(inner.split(b".")[0] + b"=="))
    assert header == {"alg": "ES256"}
