"""DPoP at our resource endpoints (RFC 9449 §7): filled in when the DPoP module lands."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def check_dpop_binding(request: HttpRequest, scheme: str, token: str, claims: dict[str, Any]) -> None:
    from .resource import ResourceError

    raise ResourceError("invalid_token", "DPoP-bound tokens are not accepted here yet.", 401, "DPoP")
