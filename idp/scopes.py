"""What each scope means to the person asked to consent (OIDC Core §5.4, §11).

The consent page shows these sentences, never bare scope names; a scope we do not know
(a client's API scope such as ``orders.read``) is shown by its name, marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from .scope_descriptions import DESCRIPTIONS

SCOPE_DESCRIPTIONS = DESCRIPTIONS | {
    "openid": "Sign you in with your Vigil account",
    "profile": "See your name and username",
    "email": "See your email address and whether it is verified",
    "offline_access": "Stay signed in while you are not using it",
}


@dataclass(frozen=True)
class ScopeView:
    name: str
    description: str
    known: bool


def describe_scopes(scope: str) -> list[ScopeView]:
    return [
        ScopeView(name, SCOPE_DESCRIPTIONS.get(name, f"Access “{name}”"), name in SCOPE_DESCRIPTIONS)
        for name in scope.split()
    ]
