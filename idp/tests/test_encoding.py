"""The shared base64 helpers keep each caller's strictness (idp/encoding.py)."""

from __future__ import annotations

import binascii

import pytest

from core.encoding import b64decode_any, b64url_decode, b64url_decode_padded, b64url_encode


def test_b64url_encode_has_no_padding() -> None:
    assert b64url_encode(b"\xfb\xff") == "-_8"


@pytest.mark.parametrize("bad", ["-_8=", "+/8", "ab cd", "a", "abcde"])
def test_strict_decoder_refuses_padding_other_alphabet_and_bad_length(bad: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(bad)


def test_strict_decoder_round_trips() -> None:
    assert b64url_decode(b64url_encode(b"\x00\x01\xfe")) == b"\x00\x01\xfe"


def test_padded_decoder_restores_padding_only() -> None:
    assert b64url_decode_padded("-_8") == b"\xfb\xff"
    with pytest.raises(binascii.Error):
        b64url_decode_padded("a")


@pytest.mark.parametrize("text", ["+/8=", "-_8", "-_8=", "+/\n8="])
def test_any_decoder_accepts_both_alphabets(text: str) -> None:
    assert b64decode_any(text) == b"\xfb\xff"


@pytest.mark.parametrize("bad", ["*", "a", b"\xff"])
def test_any_decoder_raises_value_error(bad: str | bytes) -> None:
    with pytest.raises(ValueError):
        b64decode_any(bad)
