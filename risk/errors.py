"""Errors of risk evaluation on the token endpoint and on our resource endpoints.

A token policy runs inside the grant's issuing transaction, and a refusal rolls it back
(``core/policy.py``). What the refusal must leave behind (the signal and action
events, the step-up or revocation, the user's new location) is therefore carried by the
error and written when Authlib renders it (``AuthorizationServer.handle_error_response``
calls the error), which happens after the grant's transaction has rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidGrantError
from django.db import transaction

from core.resource_errors import ResourceError

STEP_UP_DESCRIPTION = "Step-up authentication is required: send the user through authorization again."
REVOKED_DESCRIPTION = "The session was revoked by risk policy: send the user through authorization again."


class RiskRefusedError(InvalidGrantError):
    """``invalid_grant`` (RFC 6749 §5.2) whose side effects outlive the rolled-back grant."""

    def __init__(self, description: str, deferred: Callable[[], None]):
        super().__init__(description)
        self._deferred: Callable[[], None] | None = deferred

    def apply_deferred(self) -> None:
        """Write what the refusal leaves behind, once."""
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            with transaction.atomic():
                deferred()

    def __call__(self, uri: str | None = None) -> Any:
        self.apply_deferred()
        return super().__call__(uri)


class StepUpRequiredError(ResourceError):
    """RFC 9470 §3: the resource needs a stronger authentication (``acr_values``)."""

    def __init__(self, acr: str):
        super().__init__("insufficient_user_authentication", STEP_UP_DESCRIPTION, 401)
        self.acr = acr

    def www_authenticate(self) -> str:
        return f'{super().www_authenticate()}, acr_values="{self.acr}"'
