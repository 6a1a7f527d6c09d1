"""HTTP Basic client credentials, parsed strictly (RFC 7617 §2, RFC 6749 §2.3.1).

RFC 6749 §2.3.1: the client identifier and secret are each encoded with
``application/x-www-form-urlencoded`` and then joined by a colon and base64-encoded. A
header that is not valid base64, not UTF-8, has no colon, an empty part, bad percent
escapes or a control character (NUL above all: PostgreSQL cannot store it) is refused
with a reason, never passed on. Pure: no Django, no database.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote_plus

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
MAX_HEADER_LENGTH = 4096


class BasicProblem(str, Enum):
    """Why a ``Basic`` header was refused (stable reasons for events and tests)."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    NOT_BASE64 = "not_base64"
    NOT_UTF8 = "not_utf8"
    NO_COLON = "no_colon"
    BAD_ESCAPE = "bad_percent_encoding"
    NUL = "nul"
    CONTROL_CHARACTER = "control_character"
    EMPTY_PART = "empty_part"


class MalformedBasic(ValueError):
    """The ``Authorization: Basic`` header cannot carry client credentials."""

    def __init__(self, problem: BasicProblem):
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True)
class BasicCredentials:
    client_id: str
    secret: str


def is_basic(header: str | None) -> bool:
    """Whether the ``Authorization`` header uses the Basic scheme (case-insensitive)."""
    parts = (header or "").split(None, 1)  # a blank header has no scheme at all
    return bool(parts) and parts[0].lower() == "basic"


def parse_basic(header: str | None) -> BasicCredentials | None:
    """The credentials of a ``Basic`` header; ``None`` for no header or another scheme.

    Raises ``MalformedBasic`` for a Basic header that does not carry ``id:secret``.
    """
    if not is_basic(header):
        return None
    assert header is not None
    if len(header) > MAX_HEADER_LENGTH:
        raise MalformedBasic(BasicProblem.TOO_LONG)
    parts = header.split(None, 1)
    if len(parts) < 2 or not parts[1].strip():
        raise MalformedBasic(BasicProblem.EMPTY)
    client_id, _, secret = _colon_pair(_decode_base64(parts[1].strip()))
    return BasicCredentials(_form_decode(client_id), _form_decode(secret))


def _decode_base64(token: str) -> str:
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedBasic(BasicProblem.NOT_BASE64) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedBasic(BasicProblem.NOT_UTF8) from None


def _colon_pair(decoded: str) -> tuple[str, str, str]:
    if ":" not in decoded:
        raise MalformedBasic(BasicProblem.NO_COLON)
    return decoded.partition(":")


def _form_decode(part: str) -> str:
    """RFC 6749 §2.3.1 / Appendix B: form-urlencoded, UTF-8."""
    if _BROKEN_ESCAPE.search(part):
        raise MalformedBasic(BasicProblem.BAD_ESCAPE)
    try:
        value = unquote_plus(part, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise MalformedBasic(BasicProblem.NOT_UTF8) from None
    if "\x00" in value:
        raise MalformedBasic(BasicProblem.NUL)
    if _CONTROL.search(value):
        raise MalformedBasic(BasicProblem.CONTROL_CHARACTER)
    if not value:
        raise MalformedBasic(BasicProblem.EMPTY_PART)
    return value
