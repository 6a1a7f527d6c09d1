"""What each scope means to the person asked to consent, in plain language (OIDC Core 1.0
§5.4 ``profile``/``email``/``address``/``phone``, §11 ``offline_access``; §3.1.2.1 ``openid``).

The consent page shows these sentences, never bare scope names; a scope we do not know
(a client's API scope such as ``orders.read``) is shown by its name, marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StandardScope(StrEnum):
    OPENID = "openid"
    PROFILE = "profile"
    EMAIL = "email"
    PHONE = "phone"
    ADDRESS = "address"
    OFFLINE_ACCESS = "offline_access"


SCOPE_DESCRIPTIONS: dict[str, str] = {
    StandardScope.OPENID: "Sign you in with your Vigil account",
    StandardScope.PROFILE: "See your name and username",
    StandardScope.EMAIL: "See your email address and whether it is verified",
    StandardScope.PHONE: "See your phone number",
    StandardScope.ADDRESS: "See your postal address",
    StandardScope.OFFLINE_ACCESS: "Stay signed in while you are not using it",
}


@dataclass(frozen=True)
class ScopeView:
    name: str
    description: str
    known: bool


def describe_scopes(scope: str) -> list[ScopeView]:
    """The consent page's list: each scope's sentence, or ``Access “name”`` for a custom one."""
    return [
        ScopeView(name, SCOPE_DESCRIPTIONS.get(name, f"Access “{name}”"), name in SCOPE_DESCRIPTIONS)
        for name in scope.split()
    ]
