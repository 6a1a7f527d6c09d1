"""The JSON parser of the DRF endpoints (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``).

DRF's own turns a ``ValueError`` into a 400 ``ParseError`` but not the ``RecursionError`` that
Python's ``json`` raises for arrays or objects nested past its limit (``[`` × 5,000), so such a
body, sent without any credential to ``/attestation/challenge``, was a 500. It is a body that
is not JSON we can read: the same 400 ``invalid_request`` (``core.api_errors``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply.") from exc
