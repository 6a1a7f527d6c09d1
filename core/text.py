"""Text a caller sent that Vigil may store or look up: what PostgreSQL's text columns hold.

Two characters a Python string may hold cannot reach the database:

* a NUL: PostgreSQL's text and jsonb refuse it;
* a lone UTF-16 surrogate (``"\\ud800"``, which a JSON string may carry and ``json.loads``
  keeps): no UTF-8 text can hold one, so psycopg cannot send it.

Either fails the query when it is sent, a 500 after whatever the request had already done.
An identifier from a request (a ``client_id``, a SET's ``jti`` and subject) is checked with
``storable_text`` before it reaches a query, and one that fails is treated as unknown or
malformed, never passed on. Text kept only as a record (a security event's details) is
``escaped`` instead. Pure: no Django, no database.
"""

from __future__ import annotations

import re
from typing import TypeGuard

#: The characters no text column holds: NUL and the UTF-16 surrogates.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: object, max_length: int) -> TypeGuard[str]:
    """Whether ``value`` is a string of 1 to ``max_length`` characters without a NUL or a
    lone surrogate."""
    return isinstance(value, str) and 0 < len(value) <= max_length and _UNSTORABLE.search(value) is None


def escaped(text: str) -> str:
    """``text`` with each character no column holds written as its escape: a NUL as ``\\0``,
    a lone surrogate as ``\\ud800`` (the event's record keeps what was sent, readably)."""
    return _UNSTORABLE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    character = found.group()
    return "\\0" if character == "\x00" else f"\\u{ord(character):04x}"
