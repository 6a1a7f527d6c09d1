"""The error a resource request is refused with (RFC 6750 §3): raised by the token checks of
our own resource endpoints and by resource policies (``core.policy``), rendered as a
``WWW-Authenticate`` challenge by the endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ResourceError(Exception):
    error: str
    description: str
    status: int = 401
    scheme: str = "Bearer"
    headers: dict[str, str] = field(default_factory=dict)  # e.g. DPoP-Nonce (RFC 9449 §8)
    params: dict[str, str] = field(default_factory=dict)  # e.g. acr_values (RFC 9470 §3)

    def www_authenticate(self) -> str:
        extra = "".join(f', {name}="{value}"' for name, value in self.params.items())
        return f'{self.scheme} error="{self.error}", error_description="{self.description}"{extra}'
