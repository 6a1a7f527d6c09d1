"""The default names of Vigil's cookies and the prefixes browsers enforce (RFC 6265bis §4.1.3).

Pure, without Django: ``vigil/settings.py`` names its cookies with it while it is imported,
before Django's settings exist, and ``core.cookies.default_name`` names the apps' cookies
(``ACCOUNTS_KNOWN_DEVICE_COOKIE``) with it afterwards, from the prefix the settings chose
(``VIGIL_COOKIE_NAME_PREFIX``). The rules a prefix brings, and the checks that hold a
configured name to them, are ``core.cookies``'.
"""

from __future__ import annotations

from enum import StrEnum


class Prefix(StrEnum):
    """Name prefixes with rules (matched without regard to case, as browsers do)."""

    HOST = "__Host-"
    SECURE = "__Secure-"


def default_prefix(https: bool) -> str:
    """The prefix of every default name: ``__Host-`` when the cookies are Secure (an https
    issuer, §4.1.3.2), none under http (development), where browsers refuse a ``__Host-``
    cookie that is not Secure."""
    return Prefix.HOST.value if https else ""


def prefixed(name: str, prefix: str) -> str:
    """The default name of the cookie called ``name``, under the deployment's ``prefix``."""
    return f"{prefix}{name}"
