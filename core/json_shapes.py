"""Reading a stored JSON column as the one shape it should hold. The admin's form fields
(``core.json_form_fields``) refuse any other shape, but a row written before them, behind them
(raw SQL, a data migration) or by an older release may hold anything: read so, a wrong shape
means "nothing", never a character-by-character list, a key list, or a 500."""

from __future__ import annotations

from typing import Any


def listed(values: object) -> list[str]:
    """The strings of a stored list; any other shape (a string, an object, a number): none."""
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def mapping(value: object) -> dict[str, Any]:
    """A stored object; any other shape: an empty one."""
    return value if isinstance(value, dict) else {}
