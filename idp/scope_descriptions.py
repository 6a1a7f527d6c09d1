"""What each standard OpenID Connect scope lets an app do, in plain language, for the
consent page (OIDC Core 1.0 §5.4 ``profile``/``email``/``address``/``phone``, §11
``offline_access``; §3.1.2.1 ``openid``). A custom scope is shown by its name."""

from __future__ import annotations

from enum import StrEnum


class StandardScope(StrEnum):
    OPENID = "openid"
    PROFILE = "profile"
    EMAIL = "email"
    PHONE = "phone"
    ADDRESS = "address"
    OFFLINE_ACCESS = "offline_access"


DESCRIPTIONS: dict[str, str] = {
    StandardScope.OPENID: "Sign you in and know who you are",
    StandardScope.PROFILE: "See your name, username and other basic profile details",
    StandardScope.EMAIL: "See your email address and whether it is verified",
    StandardScope.PHONE: "See your phone number",
    StandardScope.ADDRESS: "See your postal address",
    StandardScope.OFFLINE_ACCESS: "Stay signed in and access your account while you are not using the app",
}


def describe(scope: str) -> str:
    """The plain-language description of a standard scope; a custom one's own name."""
    return DESCRIPTIONS.get(scope, scope)
