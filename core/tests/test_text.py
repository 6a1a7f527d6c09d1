"""``core.text``: ``storable_text``, the one rule for an identifier a caller sent before it
reaches a query (a ``client_id``, a SET's ``jti`` and subject members), and ``escaped``, the
same characters written out where text is kept as a record (security events' details)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.text import escaped, storable_text


@pytest.mark.parametrize("value", ["a", "x" * 100, "client-é", "tab\there", "\U0001f34e"])
def test_short_text_without_a_nul_is_storable(value: str) -> None:
    assert storable_text(value, 100)


@pytest.mark.parametrize("value", ["", "x" * 101, "a\x00b", "\x00", "\ud800", "a\udfffb", "\ud83c\udf4e", None, 7,
                                   b"abc", ["a"]],
                         ids=["empty", "too-long", "nul-inside", "nul", "lone-surrogate", "low-surrogate-inside",
                              "surrogate-pair-as-two", "none", "int", "bytes", "list"])
def test_anything_else_is_not(value: object) -> None:
    assert not storable_text(value, 100)


@settings(max_examples=300)
@given(st.text(st.characters(exclude_categories=()), max_size=12))
def test_storable_is_exactly_what_utf8_text_without_a_nul_is(value: str) -> None:
    """What the rule is for: psycopg sends text as UTF-8 (no surrogate survives it) and
    PostgreSQL refuses a NUL; anything else of the right length passes."""
    utf8 = value.encode("utf-8", "replace").decode() == value  # each lone surrogate became "?"
    assert storable_text(value, 10) == (0 < len(value) <= 10 and "\x00" not in value and utf8)


@pytest.mark.parametrize(("text", "written"), [("plain", "plain"), ("a\x00b", "a\\0b"), ("t\ud800", "t\\ud800"),
                                               ("\udfff\x00", "\\udfff\\0"), ("é\U0001f34e", "é\U0001f34e")])
def test_escaped_writes_out_what_no_column_holds(text: str, written: str) -> None:
    assert escaped(text) == written and storable_text(escaped(text), 100)
