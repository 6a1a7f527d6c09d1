"""Errors of risk evaluation on the token endpoint and on our resource endpoints.

A token policy runs inside the grant's issuing transaction, and a refusal rolls it back
(``core/policy.py``). What the refusal must leave behind (the signal and action
events, the step-up or revocation, the user's new location) is therefore kept after the
rollback (``core.policy.KeptAfterRollback``): the server's error handling writes it,
once, after the grant's transaction has rolled back. Rendering the error writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from authlib.oauth2.rfc6749.errors import InvalidGrantError
from django.db import transaction

from core.policy import KeptAfterRollback
from core.resource_errors import ResourceError, ResourceErrorCode

STEP_UP_DESCRIPTION = "Step-up authentication is required: send the user through authorization again."
REVOKED_DESCRIPTION = "The session was revoked by risk policy: send the user through authorization again."


class RiskRefusedError(KeptAfterRollback, InvalidGrantError):
    """``invalid_grant`` (RFC 6749 §5.2) whose side effects outlive the rolled-back grant."""

    def __init__(self, description: str, deferred: Callable[[], None]):
        super().__init__(description)
        self.keep_after_rollback(lambda: _in_transaction(deferred))


def _in_transaction(work: Callable[[], None]) -> None:
    with transaction.atomic():
        work()


class StepUpRequiredError(ResourceError):
    """RFC 9470 §3: the resource needs a stronger authentication (``acr_values``)."""

    def __init__(self, acr: str):
        super().__init__(ResourceErrorCode.INSUFFICIENT_USER_AUTHENTICATION, STEP_UP_DESCRIPTION, 401)
        self.acr = acr

    def www_authenticate(self) -> str:
        return f'{super().www_authenticate()}, acr_values="{self.acr}"'
