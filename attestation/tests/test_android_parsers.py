"""Android parser boundaries: the KeyDescription ASN.1, PEM chains, Play Integrity JWE/JWS
and verdict JSON. Hypothesis fuzzing asserts that only ``AttestationError`` ever escapes."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.android import keydescription as kd
from attestation.android.chain import split_pem
from attestation.android.digests import normalise_digest
from attestation.android.key_attestation import AndroidKeyPolicy, verify_key_attestation
from attestation.android.play_integrity import (
    IntegrityPolicy,
    check_verdict,
    load_play_keys,
    parse_verdict_json,
    verify_classic_token,
)
from attestation.android.revocation import StatusListError, parse_status_list
from attestation.errors import AttestationError, Reason
from attestation.testing import google_pki as g

FUZZ = settings(
    max_examples=int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
CHALLENGE = hashlib.sha256(b"fuzz").digest()
KEY = ec.generate_private_key(ec.SECP256R1())
SPEC = g.LeafSpec(challenge=CHALLENGE)
VALID_KD = g.key_description(SPEC).dump()
VALID_CHAIN = g.to_pem(g.attestation_chain(KEY.public_key(), SPEC))
VALID_DERS = split_pem(VALID_CHAIN)
NONCE = "Zm9vYmFyYmF6cXV4cXV1eA"
VALID_TOKEN = g.encrypt_verdict(g.make_verdict(nonce=NONCE, timestamp_ms=int(NOW.timestamp() * 1000)))
KEYS = load_play_keys(*g.play_keys_b64())
POLICY = IntegrityPolicy(package_name=g.TEST_PACKAGE)


def test_keydescription_roundtrip_through_the_same_classes() -> None:
    facts = kd.parse_key_description(VALID_KD)
    assert facts.attestation_challenge == CHALLENGE
    assert kd.KeyDescription.load(VALID_KD).dump(force=True) == VALID_KD
    assert facts.hardware_enforced.tags == (1, 2, 3, 5, 10, 503, 702, 704, 705, 706, 718, 719)
    assert facts.software_enforced.tags == (701, 709)


def test_keydescription_trailing_bytes_are_refused() -> None:
    with pytest.raises(AttestationError) as info:
        kd.parse_key_description(VALID_KD + b"\x00")
    assert info.value.reason == Reason.MALFORMED_EXTENSION


def test_keydescription_unknown_enum_is_refused() -> None:
    bad = g.key_description(SPEC)
    raw = bytearray(bad.dump())
    level_at = raw.index(bytes([0x0A, 0x01, 0x01]))  # attestationSecurityLevel ENUMERATED 1
    raw[level_at + 2] = 7
    with pytest.raises(AttestationError) as info:
        kd.parse_key_description(bytes(raw))
    assert info.value.reason == Reason.MALFORMED_EXTENSION


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_keydescription_random_bytes(data: bytes) -> None:
    try:
        kd.parse_key_description(data)
    except AttestationError as exc:
        assert exc.reason == Reason.MALFORMED_EXTENSION


@FUZZ
@given(st.integers(0, len(VALID_KD) - 1), st.integers(0, 255), st.integers(0, 3))
def test_fuzz_keydescription_mutations(position: int, value: int, cut: int) -> None:
    data = bytearray(VALID_KD)
    data[position] = value
    try:
        kd.parse_key_description(bytes(data[: len(data) - cut]))
    except AttestationError as exc:
        assert exc.reason == Reason.MALFORMED_EXTENSION


def _verify(pem: str | bytes) -> None:
    verify_key_attestation(
        pem, challenge=CHALLENGE, now=NOW, policy=AndroidKeyPolicy(), roots=g.test_trusted_roots(), revoked={}
    )


@FUZZ
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_fuzz_pem_random_input(data: str | bytes) -> None:
    try:
        _verify(data)
    except AttestationError:
        pass


@FUZZ
@given(st.integers(0, 2), st.data())
def test_fuzz_chain_der_mutations(which: int, data: Any) -> None:
    ders = list(VALID_DERS)
    der = bytearray(ders[which])
    position = data.draw(st.integers(0, len(der) - 1))
    der[position] = data.draw(st.integers(0, 255))
    ders[which] = bytes(der[: len(der) - data.draw(st.integers(0, 2))])
    pem = "".join(
        f"-----BEGIN CERTIFICATE-----\n{base64.b64encode(d).decode()}\n-----END CERTIFICATE-----\n" for d in ders
    )
    try:
        _verify(pem)
    except AttestationError:
        pass


def test_valid_chain_used_by_the_fuzzers_verifies() -> None:
    _verify(VALID_CHAIN)


@FUZZ
@given(st.text(max_size=200))
def test_fuzz_jwe_random_text(token: str) -> None:
    try:
        verify_classic_token(token, keys=KEYS, policy=POLICY, expected_nonce=NONCE, now=NOW)
    except AttestationError:
        pass


@FUZZ
@given(st.integers(0, len(VALID_TOKEN) - 1), st.sampled_from("ABCxyz019-_.=+/ "))
def test_fuzz_jwe_mutations(position: int, char: str) -> None:
    token = VALID_TOKEN[:position] + char + VALID_TOKEN[position + 1 :]
    try:
        verify_classic_token(token, keys=KEYS, policy=POLICY, expected_nonce=NONCE, now=NOW)
    except AttestationError:
        pass


def test_fuzz_targets_start_from_a_valid_token() -> None:
    assert verify_classic_token(VALID_TOKEN, keys=KEYS, policy=POLICY, expected_nonce=NONCE, now=NOW)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
SECTIONS = [
    "requestDetails",
    "appIntegrity",
    "deviceIntegrity",
    "accountDetails",
    "testingDetails",
    "environmentDetails",
]


@FUZZ
@given(st.dictionaries(st.sampled_from(SECTIONS), json_values, max_size=6))
def test_fuzz_verdict_shapes(sections: dict[str, Any]) -> None:
    verdict = g.make_verdict(nonce=NONCE, timestamp_ms=int(NOW.timestamp() * 1000))
    verdict.update(sections)
    try:
        check_verdict(verdict, policy=POLICY, expected=NONCE, kind="nonce", now=NOW)
    except AttestationError:
        pass


@FUZZ
@given(st.sampled_from(SECTIONS), st.text(max_size=20), json_values)
def test_fuzz_verdict_fields(section: str, key: str, value: Any) -> None:
    verdict = g.make_verdict(nonce=NONCE, timestamp_ms=int(NOW.timestamp() * 1000))
    verdict.setdefault(section, {})[key] = value
    try:
        check_verdict(verdict, policy=POLICY, expected=NONCE, kind="nonce", now=NOW)
    except AttestationError:
        pass


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_verdict_json_bytes(data: bytes) -> None:
    try:
        parse_verdict_json(data)
    except AttestationError as exc:
        assert exc.reason == Reason.MALFORMED_TOKEN


@FUZZ
@given(json_values)
def test_fuzz_status_list(document: Any) -> None:
    try:
        parse_status_list({"entries": document})
    except StatusListError:
        pass


@given(st.text(max_size=80))
def test_fuzz_digest_spellings(value: str) -> None:
    try:
        assert len(normalise_digest(value)) == 32
    except ValueError:
        pass


def test_status_list_serials_are_normalised() -> None:
    assert parse_status_list({"entries": {"00Ab": {"status": "SUSPENDED"}}}) == {"ab": "SUSPENDED"}
    with pytest.raises(StatusListError):
        parse_status_list({"entries": {"ab": {"status": "GONE"}}})
    with pytest.raises(StatusListError):
        parse_status_list(json.loads("[]"))


def _with_hardware_children(children: list[bytes]) -> bytes:
    """VALID_KD with its hardwareEnforced list replaced by ``children`` (DER, in the given order)."""
    raw = kd._RawKeyDescription.load(VALID_KD)
    head = b"".join(raw[i].dump() for i in range(7))
    return kd._der_sequence(head + kd._der_sequence(b"".join(children)))


def _hardware_children() -> list[bytes]:
    from asn1crypto import parser

    body = parser.parse(kd._RawKeyDescription.load(VALID_KD)["hardware_enforced"].dump())[4]
    children = []
    while body:
        _c, _m, _t, header, contents, trailer = parser.parse(body)
        children.append(header + contents + trailer)
        body = body[len(children[-1]) :]
    return children


def test_unknown_future_tags_are_skipped_and_reported() -> None:
    from asn1crypto import core

    children = _hardware_children() + [core.Integer(1, explicit=799).dump()]
    facts = kd.parse_key_description(_with_hardware_children(children))
    assert facts.extras["unknown_hardware_tags"] == [799]
    assert facts.hardware_enforced.root_of_trust is not None


@pytest.mark.parametrize("mutate", ["swap", "repeat"])
def test_out_of_order_or_repeated_tags_are_refused(mutate: str) -> None:
    children = _hardware_children()
    if mutate == "swap":
        children[0], children[1] = children[1], children[0]
    else:
        children.insert(1, children[0])
    with pytest.raises(AttestationError) as info:
        kd.parse_key_description(_with_hardware_children(children))
    assert info.value.reason == Reason.MALFORMED_EXTENSION
