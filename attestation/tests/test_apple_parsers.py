"""Authenticator-data and encoding parsers: exact results on good input, coded errors on bad,
and hypothesis fuzzing asserting that only ``AttestationError`` ever escapes."""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.apple.assertion import verify_assertion
from attestation.apple.attestation import verify_attestation
from attestation.apple.authdata import parse_authenticator_data
from attestation.encoding import b64decode_any, decode_cbor_map
from attestation.errors import AttestationError, Reason
from attestation.testing import apple_pki
from simulator.ios import IOSDevice

from .conftest import APPLE_APP_ID

RP = hashlib.sha256(APPLE_APP_ID.encode()).digest()
DEVICE = IOSDevice(APPLE_APP_ID)
VALID_ATTESTATION_AUTH = apple_pki.auth_data(
    APPLE_APP_ID, counter=0, aaguid=b"appattest" + b"\x00" * 7, credential_id=DEVICE.key_id,
    credential_key=apple_pki.cose_key(DEVICE.key.public_key()),
)


def test_parse_assertion_authdata_with_at_flag_and_no_credential() -> None:
    auth = parse_authenticator_data(RP + b"\x40" + struct.pack(">I", 7))
    assert (auth.rp_id_hash, auth.flags, auth.counter, auth.credential_id) == (RP, 0x40, 7, None)


def test_parse_attestation_authdata() -> None:
    auth = parse_authenticator_data(VALID_ATTESTATION_AUTH)
    assert auth.aaguid == b"appattest" + b"\x00" * 7
    assert auth.credential_id == DEVICE.key_id
    assert auth.credential_public_key is not None and auth.credential_public_key[3] == -7
    assert auth.extensions is None


def test_flagged_extensions_are_parsed() -> None:
    auth = parse_authenticator_data(bytes([*RP, 0xC0, 0, 0, 0, 0]) + VALID_ATTESTATION_AUTH[37:] + cbor2.dumps({"x": 1}))
    assert auth.extensions == {"x": 1}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        RP + b"\x40\x00\x00",
        RP + b"\x40\x00\x00\x00\x00" + b"\x00" * 10,  # truncated attested credential data
        RP + b"\x40\x00\x00\x00\x00" + b"\x00" * 16 + b"\xff\xff" + b"\x00" * 4,  # credential id past the end
        VALID_ATTESTATION_AUTH[:-5],  # COSE key cut short
        RP + b"\x80\x00\x00\x00\x00",  # ED flag without extensions
        RP + b"\x00\x00\x00\x00\x00" + cbor2.dumps([1]),  # trailing non-map
        VALID_ATTESTATION_AUTH[:37 + 16 + 2 + 32] + cbor2.dumps([1, 2]),  # COSE key not a map
        "text",
    ],
    ids=["empty", "short", "trunc-aaguid", "cred-len", "cose-cut", "ed-empty", "trailing-array", "cose-array", "str"],
)
def test_malformed_authenticator_data(data: Any) -> None:
    with pytest.raises(AttestationError) as exc:
        parse_authenticator_data(data)
    assert exc.value.reason == Reason.MALFORMED_AUTHENTICATOR_DATA


@pytest.mark.parametrize("text", ["a", "a===b", "é", "abc$"], ids=["length", "padding", "non-ascii", "symbol"])
def test_malformed_base64(text: str) -> None:
    with pytest.raises(AttestationError) as exc:
        b64decode_any(text)
    assert exc.value.reason == Reason.MALFORMED_BASE64


@pytest.mark.parametrize("text", ["aGVsbG8", "aGVsbG8=", "aGVs\nbG8=", "-_8", "+/8="])
def test_base64_variants(text: str) -> None:
    assert b64decode_any(text) in {b"hello", b"\xfb\xff"}


def test_oversized_cbor_is_refused() -> None:
    with pytest.raises(AttestationError) as exc:
        decode_cbor_map(cbor2.dumps({"a": b"\x00" * 70000}), "object")
    assert exc.value.reason == Reason.MALFORMED_CBOR


# --------------------------------------------------------------------- fuzzing
FUZZ = settings(max_examples=int(__import__("os").environ.get("VIGIL_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=64) | st.text(max_size=16),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8) | st.integers(), children, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_authdata_parser(data: bytes) -> None:
    try:
        parse_authenticator_data(data)
    except AttestationError:
        pass


@FUZZ
@given(st.binary(min_size=0, max_size=200))
def test_fuzz_authdata_after_a_valid_header(tail: bytes) -> None:
    try:
        parse_authenticator_data(RP + b"\x40\x00\x00\x00\x00" + tail)
    except AttestationError:
        pass


@FUZZ
@given(st.integers(min_value=0, max_value=len(VALID_ATTESTATION_AUTH) - 1), st.integers(0, 255))
def test_fuzz_authdata_single_byte_mutations(position: int, value: int) -> None:
    data = bytearray(VALID_ATTESTATION_AUTH)
    data[position] = value
    try:
        parse_authenticator_data(bytes(data))
    except AttestationError:
        pass


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_attestation_bytes(data: bytes) -> None:
    with pytest.raises(AttestationError):
        verify_attestation(data, app_id=APPLE_APP_ID, environment="production", client_data_hash=b"x", now=_now())


@FUZZ
@given(cbor_values, cbor_values, cbor_values)
def test_fuzz_attestation_structure(fmt: Any, stmt: Any, auth: Any) -> None:
    data = cbor2.dumps({"fmt": fmt, "attStmt": stmt, "authData": auth})
    with pytest.raises(AttestationError):
        verify_attestation(data, app_id=APPLE_APP_ID, environment="production", client_data_hash=b"x", now=_now())


VALID_ATTESTATION = DEVICE.attest(b"x" * 32)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::cryptography.utils.CryptographyDeprecationWarning")
@FUZZ
@given(st.integers(min_value=0, max_value=len(VALID_ATTESTATION) - 1), st.integers(0, 255), st.integers(0, 8))
def test_fuzz_attestation_mutations(position: int, value: int, cut: int) -> None:
    """Mutated real-shaped objects reach the certificate, ASN.1 and COSE parsers."""
    data = bytearray(VALID_ATTESTATION)
    data[position] = value
    try:
        verify_attestation(
            bytes(data[: len(data) - cut]), app_id=APPLE_APP_ID, environment="production",
            client_data_hash=b"x" * 32, now=_now(), roots=[apple_pki.test_root().cert],
        )
    except AttestationError:
        pass


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_nonce_extension(raw: bytes) -> None:
    from attestation.apple.certs import extract_nonce

    leaf = apple_pki.issue_credential_certificate(
        DEVICE.key.public_key(), b"", APPLE_APP_ID, not_before=_now(), not_after=_now(), nonce_extension=raw
    )
    try:
        extract_nonce(leaf)
    except AttestationError as exc:
        assert exc.reason == Reason.MALFORMED_EXTENSION


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_assertion_bytes(data: bytes) -> None:
    with pytest.raises(AttestationError):
        verify_assertion(data, public_key=DEVICE.public_key_pem, app_id=APPLE_APP_ID, client_data_hash=b"x", previous_counter=0)


@FUZZ
@given(cbor_values, st.binary(max_size=120))
def test_fuzz_assertion_structure(signature: Any, auth: bytes) -> None:
    data = cbor2.dumps({"signature": signature, "authenticatorData": auth})
    with pytest.raises(AttestationError):
        verify_assertion(data, public_key=DEVICE.public_key_pem, app_id=APPLE_APP_ID, client_data_hash=b"x", previous_counter=0)


@FUZZ
@given(st.text(max_size=80) | st.binary(max_size=80))
def test_fuzz_base64(text: Any) -> None:
    try:
        b64decode_any(text)
    except AttestationError:
        pass


def _now() -> Any:
    from datetime import datetime

    return datetime(2026, 6, 1, tzinfo=UTC)
