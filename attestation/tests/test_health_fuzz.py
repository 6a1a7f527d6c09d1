"""Receipt parsers fuzzed (hypothesis): arbitrary bytes, and mutations of a well-formed
receipt, only ever raise the parser's own error, never anything else."""

from __future__ import annotations

import os

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_health.facts import verified_signals
from device_health.receipt_signature import ReceiptSignatureError, verify_receipt_signature
from device_health.receipts import ReceiptError, parse_receipt
from device_health.testing import _root, make_receipt

pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")  # mutated serials
FUZZ = settings(max_examples=int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "200")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
GOOD = make_receipt("ABCDE12345.com.example.vigil", risk_metric=3)


def _mutate(data: bytes, position: int, value: int) -> bytes:
    position %= len(data)
    return data[:position] + bytes([value]) + data[position + 1:]


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    with pytest.raises(ReceiptError):
        parse_receipt(data) if not data.startswith(b"0") else _parse_or_raise(data)
    with pytest.raises(ReceiptSignatureError):
        verify_receipt_signature(data, [_root()[0]], timezone.now())


def _parse_or_raise(data: bytes) -> None:
    """A random DER-looking input that happens to parse is fine; make the assertion uniform."""
    parse_receipt(data)
    raise ReceiptError("parsed")


@FUZZ
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_one_byte_mutations_of_a_real_layout(position: int, value: int) -> None:
    """Either refused with the parser's own error, or (a byte the signature does not cover,
    e.g. in the unsigned outer SignedData) accepted with exactly the original fields."""
    mutated = _mutate(GOOD, position, value)
    try:
        parse_receipt(mutated)
    except ReceiptError:
        pass
    try:
        verify_receipt_signature(mutated, [_root()[0]], timezone.now())
    except ReceiptSignatureError:
        return
    original, accepted = parse_receipt(GOOD), parse_receipt(mutated)
    assert (accepted.app_id, accepted.risk_metric, accepted.receipt_type) == (
        original.app_id, original.risk_metric, original.receipt_type)


@FUZZ
@given(st.dictionaries(st.text(max_size=20), st.none() | st.booleans() | st.integers() | st.text(max_size=60)
                       | st.lists(st.integers(), max_size=3)))
def test_signals_keep_only_known_names_of_the_right_type(signals: dict[str, object]) -> None:
    kept = verified_signals(signals)
    assert set(kept) <= {"os_version", "screen_captured", "screen_mirrored", "debugger_attached"}
    assert all(isinstance(v, bool) for k, v in kept.items() if k != "os_version")
    assert all(v.isprintable() and len(v) <= 40 for k, v in kept.items() if k == "os_version")
