"""The error a resource request is refused with (RFC 6750 §3): raised by the token checks of
our own resource endpoints and by resource policies (``core.policy``), rendered as a
``WWW-Authenticate`` challenge by the endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ResourceErrorCode(StrEnum):
    """The ``error`` of a refused request at our resource endpoints: RFC 6750 §3.1, RFC 9470 §3,
    and RFC 9449 §7.1's ``invalid_dpop_proof`` / ``use_dpop_nonce`` (``sessions.dpop.ErrorCode``)."""

    INVALID_REQUEST = "invalid_request"
    INVALID_TOKEN = "invalid_token"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    INSUFFICIENT_USER_AUTHENTICATION = "insufficient_user_authentication"


@dataclass
class ResourceError(Exception):
    error: str  # a ResourceErrorCode, or a sessions.dpop.ErrorCode
    description: str
    status: int = 401
    scheme: str = "Bearer"
    headers: dict[str, str] = field(default_factory=dict)  # e.g. DPoP-Nonce (RFC 9449 §8)
    params: dict[str, str] = field(default_factory=dict)  # e.g. acr_values (RFC 9470 §3)

    def www_authenticate(self) -> str:
        extra = "".join(f', {name}="{value}"' for name, value in self.params.items())
        return f'{self.scheme} error="{self.error}", error_description="{self.description}"{extra}'

    def body(self) -> dict[str, str]:
        """The JSON body: the challenge's error, as an RFC 6749 §5.2 body carries it."""
        return {"error": self.error, "error_description": self.description}


class AuthenticationRequired(ResourceError):
    """RFC 6750 §3.1: a request that "lacks any authentication information (e.g., the client was
    unaware that authentication is necessary or attempted using an unsupported authentication
    method)" gets a 401 whose challenges carry no error code or other error information, one
    per scheme we accept (RFC 9110 §11.6.1 lets one header list several). The body says no more:
    an empty JSON object. ``error`` is empty: there is none to answer; ``description`` is only
    for the record (why: no token, or another scheme)."""

    def __init__(self, challenges: list[str], description: str):
        super().__init__("", description, 401)
        self.challenges = challenges

    def www_authenticate(self) -> str:
        return ", ".join(self.challenges)

    def body(self) -> dict[str, str]:
        return {}
