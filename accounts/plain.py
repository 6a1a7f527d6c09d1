"""What the account page says, in words: how someone signed in and how strong that is
(RFC 8176 ``amr`` values, our ``acr`` classes in ``core.acr``), which browser and device a
session is (user agents parsed with ua-parser's maintained rules), where it was (the
offline GeoLite2 database, ``risk.geo``), and when (in the person's time zone)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.utils.functional import Promise
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from core.acr import ACR_MFA, ACR_PASSWORD, ACR_PHISHING_RESISTANT
from risk.geo import place_names

#: ``acr`` in words: what the person proved, and how strong that is.
STRENGTH: dict[str, Promise] = {
    ACR_PASSWORD: gettext_lazy("Basic: a password only"),
    ACR_MFA: gettext_lazy("Strong: two steps"),
    ACR_PHISHING_RESISTANT: gettext_lazy("Strongest: a passkey, which cannot be phished"),
}

#: RFC 8176 method values in words, in the order they are listed.
METHODS: dict[str, Promise] = {
    "pwd": gettext_lazy("password"),
    "otp": gettext_lazy("code from an authenticator app or a recovery code"),
    "hwk": gettext_lazy("passkey kept on one device"),
    "swk": gettext_lazy("synced passkey"),
    "user": gettext_lazy("fingerprint, face or device PIN"),
}


def strength(acr: str) -> str:
    return str(STRENGTH.get(acr, _("Unknown")))


def methods(amr: list[str]) -> list[str]:
    """The methods used, in words (``mfa`` only says there were several: left out)."""
    return [str(METHODS[m]) for m in METHODS if m in amr]


@dataclass(frozen=True)
class Software:
    browser: str
    system: str
    device: str

    def __str__(self) -> str:
        if self.browser and self.system:
            text = _("%(browser)s on %(system)s") % {"browser": self.browser, "system": self.system}
        else:
            text = self.browser or self.system or _("Unknown browser")
        return f"{text} · {self.device}" if self.device else text


def _named(family: str, major: str | None) -> str:
    if not family or family == "Other":
        return ""
    return f"{family} {major}" if major else family


@lru_cache(maxsize=256)
def software(user_agent: str) -> Software:
    """Browser, operating system and device model of a ``User-Agent`` (ua-parser)."""
    import ua_parser

    result = ua_parser.parse(user_agent[:500]).with_defaults()
    device = result.device.model if result.device.family not in ("Other", "") else ""
    if device and result.device.brand and not device.startswith(result.device.brand):
        device = f"{result.device.brand} {device}"
    return Software(_named(result.user_agent.family, result.user_agent.major),
                    _named(result.os.family, result.os.major), device or "")


def describe_user_agent(user_agent: str) -> str:
    return str(software(user_agent or "")) if user_agent else _("Unknown browser")


def place(ip: str | None) -> str:
    """"City, Country" in the page's language, the country alone, or ``""``."""
    names = place_names(ip)
    if names is None:
        return ""
    city, country = names.in_language(get_language() or "en")
    return f"{city}, {country}" if city else country
