"""Token policies: the seam where risk evaluation and device-health rules plug into issuing.

Every grant builds a ``TokenContext`` just before it signs tokens (inside the issuing
transaction) and runs the registered policies in order. A policy may refuse by raising an
``OAuth2Error`` (the transaction rolls back: nothing is lost), or narrow what is issued by
returning a ``PolicyDecision`` (fewer scopes, a shorter access-token lifetime, extra claims).
Resource policies run the same way when our own resource endpoints (userinfo) accept a token.

Policies register from their app's ``AppConfig.ready()``:

    from core.policy import register_token_policy
    register_token_policy(evaluate_risk)

A refusal that must leave something behind although its transaction rolls back (the
snapshot that denied a device, the risk signals and the revocation they caused) is a
``KeptAfterRollback``: the policy that decides attaches that work to the error
(``keep_after_rollback``), and the server's error handling runs it once, after the rollback
(``run_after_rollback``), before rendering. Rendering an error writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.http import HttpRequest

# The client, session and device are the higher apps' models; core imports no app, so they
# are typed structurally here (``Any``) and precisely where the policies are written.
Client = Any
DeviceSession = Any
Device = Any

AfterRollback = Callable[[], None]


class KeptAfterRollback:
    """Mixin for a refusal raised inside the issuing transaction whose record must outlive
    its rollback. Only the code that decides attaches work; only the server's error handling
    runs it (``AuthorizationServer.handle_error_response``); rendering stays pure."""

    def keep_after_rollback(self, work: AfterRollback) -> None:
        """Run ``work`` once the transaction that raised this error has rolled back."""
        self.__dict__.setdefault("_kept_after_rollback", []).append(work)

    def run_after_rollback(self) -> None:
        """Run the attached work, once (a second call finds none)."""
        kept: list[AfterRollback] = self.__dict__.pop("_kept_after_rollback", [])
        for work in kept:
            work()


class GrantType(StrEnum):
    """The token endpoint's grants, as ``TokenContext.grant_type`` names them (RFC 6749 §4,
    RFC 8628 §3.4, RFC 8693 §2.1)."""

    AUTHORIZATION_CODE = "authorization_code"
    REFRESH_TOKEN = "refresh_token"
    CLIENT_CREDENTIALS = "client_credentials"
    DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
    TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


@dataclass
class TokenContext:
    grant_type: str
    client: Client
    user: Any
    session: DeviceSession | None
    scope: str
    now: datetime
    request: HttpRequest | None
    device: Device | None = None
    device_signals: dict[str, Any] | None = None  # self-reported signals verified in this request's binding
    # How many refused attestations of this session preceded this request's good one (the
    # shared failure counter); None when unknown (no attestation in this request).
    attestation_failures: int | None = None
    # The unattested device this request moves the session away from (an upgrade,
    # docs/unattested-devices.md): the request is judged as that device's until it succeeds.
    upgraded_from: Device | None = None


@dataclass
class PolicyDecision:
    scope: str | None = None
    access_token_lifetime: int | None = None
    extra_claims: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


@dataclass
class ResourceContext:
    claims: dict[str, Any]
    token: Any  # sessions.models.AccessToken
    request: HttpRequest
    now: datetime


TokenPolicy = Callable[[TokenContext], PolicyDecision | None]
ResourcePolicy = Callable[[ResourceContext], None]

_token_policies: list[TokenPolicy] = []
_resource_policies: list[ResourcePolicy] = []


def register_token_policy(policy: TokenPolicy) -> None:
    if policy not in _token_policies:
        _token_policies.append(policy)


def register_resource_policy(policy: ResourcePolicy) -> None:
    if policy not in _resource_policies:
        _resource_policies.append(policy)


def apply_token_policies(context: TokenContext) -> PolicyDecision:
    """Run every policy; scopes only ever narrow, lifetimes only ever shorten."""
    combined = PolicyDecision(scope=context.scope)
    for policy in list(_token_policies):
        decision = policy(context)
        if decision is None:
            continue
        if decision.scope is not None:
            allowed = set(decision.scope.split())
            combined.scope = " ".join(s for s in (combined.scope or "").split() if s in allowed)
            context.scope = combined.scope
        if decision.access_token_lifetime is not None:
            current = combined.access_token_lifetime
            combined.access_token_lifetime = (
                decision.access_token_lifetime if current is None else min(current, decision.access_token_lifetime)
            )
        combined.extra_claims.update(decision.extra_claims)
        combined.reasons.extend(decision.reasons)
    return combined


def apply_resource_policies(context: ResourceContext) -> None:
    for policy in list(_resource_policies):
        policy(context)
