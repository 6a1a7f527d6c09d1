"""Signed values (idp/signed_values.py) and the secret ring behind them (core/crypto.py)."""

from __future__ import annotations

from typing import Any

import pytest

from core.crypto import ENCRYPTION_SECRETS, SIGNING_SECRETS, SecretRing
from core.encoding import b64url_decode, b64url_encode
from core.signed_values import Purpose, dump, load

OLD_KEY = "old-signing-key-0123456789abcdefghijklmnopqrstuvwxyz-0123"
NEW_KEY = "new-signing-key-0123456789abcdefghijklmnopqrstuvwxyz-0123"


def test_ring_reads_current_and_fallbacks_on_every_use(settings: Any) -> None:
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_KEY, [OLD_KEY]
    assert (SIGNING_SECRETS.current, SIGNING_SECRETS.fallbacks, SIGNING_SECRETS.all()) == (NEW_KEY, [OLD_KEY], [NEW_KEY, OLD_KEY])
    settings.IDP_KEY_ENCRYPTION_SECRET, settings.IDP_KEY_ENCRYPTION_SECRET_FALLBACKS = "a", []
    assert ENCRYPTION_SECRETS.all() == ["a"]


def test_ring_without_a_fallbacks_setting(settings: Any) -> None:
    settings.VIGIL_TEST_SECRET = "only"
    assert SecretRing("VIGIL_TEST_SECRET").all() == ["only"]


def test_round_trip_and_url_safe_alphabet() -> None:
    value = dump(Purpose.DPOP_NONCE, b"\x00\xffpayload")
    assert load(Purpose.DPOP_NONCE, value, max_chars=100) == b"\x00\xffpayload"
    body, signature = value.split(".")
    assert b64url_encode(b64url_decode(body)) == body and len(signature) == 43


@pytest.mark.parametrize("part", ["body", "signature"])
def test_tampered_values_are_refused(part: str) -> None:
    body, signature = dump(Purpose.ATTESTATION_CHALLENGE, b"payload").split(".")
    if part == "body":
        body = b64url_encode(b"paylOad")
    else:
        signature = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert load(Purpose.ATTESTATION_CHALLENGE, f"{body}.{signature}", max_chars=100) is None


def test_each_purpose_has_its_own_key() -> None:
    for made, asked in ((Purpose.ATTESTATION_CHALLENGE, Purpose.DPOP_NONCE), (Purpose.DPOP_NONCE, Purpose.ATTESTATION_CHALLENGE)):
        assert load(asked, dump(made, b"payload"), max_chars=100) is None


@pytest.mark.parametrize("value", [None, 42, b"bytes", "", ".", "no-dot", "a.b.c", "é.é"])
def test_garbage_is_refused(value: Any) -> None:
    assert load(Purpose.DPOP_NONCE, value, max_chars=100) is None


def test_too_long_is_refused_before_checking() -> None:
    value = dump(Purpose.DPOP_NONCE, bytes(64))
    assert load(Purpose.DPOP_NONCE, value, max_chars=len(value)) == bytes(64)
    assert load(Purpose.DPOP_NONCE, value, max_chars=len(value) - 1) is None


def test_rotation_keeps_values_in_flight_until_the_fallback_goes(settings: Any) -> None:
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    value = dump(Purpose.DPOP_NONCE, b"payload")
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_KEY, [OLD_KEY]
    assert load(Purpose.DPOP_NONCE, value, max_chars=100) == b"payload"
    assert dump(Purpose.DPOP_NONCE, b"payload") != value  # new values use the new key
    settings.SECRET_KEY_FALLBACKS = []
    assert load(Purpose.DPOP_NONCE, value, max_chars=100) is None
