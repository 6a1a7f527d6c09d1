"""Text a caller sent that Vigil may store or look up: what PostgreSQL's text columns hold.

PostgreSQL's text (and so every ``CharField`` lookup) refuses a NUL character: the query
fails when it is sent, a 500 after whatever the request had already done. An identifier
from a request (a ``client_id``, a SET's ``jti`` or subject) is checked with
``storable_text`` before it reaches a query, and one that fails is treated as unknown or
malformed, never passed on. Pure: no Django, no database.
"""

from __future__ import annotations

from typing import TypeGuard


def storable_text(value: object, max_length: int) -> TypeGuard[str]:
    """Whether ``value`` is a string of 1 to ``max_length`` characters without a NUL."""
    return isinstance(value, str) and 0 < len(value) <= max_length and "\x00" not in value
