"""Cookie names and the prefixes browsers enforce (RFC 6265bis §4.1.3).

A cookie named ``__Secure-...`` is accepted only with ``Secure`` from a secure origin
(§4.1.3.1); ``__Host-...`` also only without ``Domain`` and with ``Path=/`` (§4.1.3.2), so
a sibling subdomain, or an answer over plain http, cannot set it: no cookie tossing or
session fixation from ``evil.example.com`` into ``id.example.com``. Every cookie Vigil
sets is host-only with ``Path=/``, and ``Secure`` under an https issuer, where its default
name takes ``__Host-`` (``VIGIL_COOKIE_NAME_PREFIX``, ``vigil/settings.py``; the names'
rule is ``core.cookie_names``, which the settings module can import).

Browsers drop a prefixed cookie whose attributes break its prefix's rules, silently: the
system checks ``vigil.E030`` and ``vigil.E031`` (``idp/checks.py``) refuse such a name at
start instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.checks import Error

from .cookie_names import Prefix, prefixed


@dataclass(frozen=True)
class Cookie:
    """A cookie Vigil sets: its name, the setting that names it, and the attributes it is set with."""

    label: str
    name: str
    setting: str
    secure: bool
    path: str = "/"
    domain: str | None = None


def default_name(name: str) -> str:
    """``name`` with this deployment's default prefix: ``__Host-`` under an https issuer."""
    return prefixed(name, getattr(settings, "VIGIL_COOKIE_NAME_PREFIX", ""))


def prefix_of(name: str) -> Prefix | None:
    return next((prefix for prefix in Prefix if name.lower().startswith(prefix.lower())), None)


def problems(cookie: Cookie) -> list[Error]:
    """What would make browsers drop ``cookie`` for its name's prefix (RFC 6265bis §4.1.3)."""
    prefix = prefix_of(cookie.name)
    if prefix is None:
        return []
    found: list[Error] = []
    if not cookie.secure:
        found.append(Error(
            f"The {cookie.label} cookie is named {cookie.name!r} but is not Secure: browsers refuse a "
            f"{prefix.value} cookie without Secure (RFC 6265bis §4.1.3), so it would never be set.",
            hint=f"Serve Vigil over https (an https IDP_ISSUER), or set {cookie.setting} to a name "
                 f"without {prefix.value}.", id="vigil.E030"))
    if prefix is Prefix.HOST and (cookie.domain or cookie.path != "/"):
        found.append(Error(
            f"The {cookie.label} cookie is named {cookie.name!r} but is set with Domain={cookie.domain!r}, "
            f"Path={cookie.path!r}: browsers refuse a __Host- cookie with a Domain or a Path other than / "
            "(RFC 6265bis §4.1.3.2).",
            hint=f"Leave its domain unset and its path '/', or set {cookie.setting} to a __Secure- or "
                 "unprefixed name.", id="vigil.E031"))
    return found


def project_cookies() -> list[Cookie]:
    """The cookies named in ``vigil/settings.py``: Django's session, CSRF and language cookies,
    the flash messages' (``core.flash_messages``: the session cookie's Domain) and the time
    zone's (``core.locale``: written by the page's script, Secure on an https page)."""
    secure, domain = bool(settings.SESSION_COOKIE_SECURE), settings.SESSION_COOKIE_DOMAIN
    cookies = [
        Cookie("session", settings.SESSION_COOKIE_NAME, "VIGIL_SESSION_COOKIE_NAME", secure,
               settings.SESSION_COOKIE_PATH, domain),
        Cookie("language", settings.LANGUAGE_COOKIE_NAME, "VIGIL_LANGUAGE_COOKIE_NAME",
               bool(settings.LANGUAGE_COOKIE_SECURE), settings.LANGUAGE_COOKIE_PATH, settings.LANGUAGE_COOKIE_DOMAIN),
        Cookie("flash messages", settings.VIGIL_MESSAGES_COOKIE_NAME, "VIGIL_MESSAGES_COOKIE_NAME", secure,
               domain=domain),
        Cookie("time zone", settings.VIGIL_TIME_ZONE_COOKIE_NAME, "VIGIL_TIME_ZONE_COOKIE_NAME", secure),
    ]
    if not settings.CSRF_USE_SESSIONS:
        cookies.append(Cookie("CSRF", settings.CSRF_COOKIE_NAME, "VIGIL_CSRF_COOKIE_NAME",
                              bool(settings.CSRF_COOKIE_SECURE), settings.CSRF_COOKIE_PATH,
                              settings.CSRF_COOKIE_DOMAIN))
    return cookies
