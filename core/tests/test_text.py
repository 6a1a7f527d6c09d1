"""``core.text.storable_text``: the one rule for an identifier a caller sent before it reaches
a query (a ``client_id``, a SET's ``jti`` and subject members)."""

from __future__ import annotations

import pytest

from core.text import storable_text


@pytest.mark.parametrize("value", ["a", "x" * 100, "client-é", "tab\there", "\U0001f34e"])
def test_short_text_without_a_nul_is_storable(value: str) -> None:
    assert storable_text(value, 100)


@pytest.mark.parametrize("value", ["", "x" * 101, "a\x00b", "\x00", None, 7, b"abc", ["a"]],
                         ids=["empty", "too-long", "nul-inside", "nul", "none", "int", "bytes", "list"])
def test_anything_else_is_not(value: object) -> None:
    assert not storable_text(value, 100)
