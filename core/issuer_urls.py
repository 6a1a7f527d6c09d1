"""The issuer's own URLs: its identifier (``IDP_ISSUER``, OpenID Connect Discovery §3
``issuer``) and every address below it, which Vigil itself answers (``/token``,
``/introspect``, ``/userinfo``...). The userinfo endpoint's URL is also a resource identifier
(RFC 8707; ``idp.oauth.resources``); no other client may be the resource server of any of
them (``clients.audiences``)."""

from __future__ import annotations

import ipaddress
import posixpath
import re
import socket
from functools import lru_cache
from urllib.parse import SplitResult, unquote, urlsplit

from .app_settings import app_settings

#: Where the userinfo endpoint answers, below the issuer (``idp.oauth_urls``).
USERINFO_PATH = "/userinfo"
_DEFAULT_PORTS = {"https": 443, "http": 80}
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")


def userinfo_endpoint() -> str:
    """The userinfo endpoint's URL, as discovery publishes it: its resource identifier."""
    return f"{app_settings.ISSUER}{USERINFO_PATH}"


def within_issuer(value: str) -> bool:
    """Whether ``value`` is the issuer's URL or an address below it, however it is spelled
    (RFC 3986 §6.2.2-3: scheme and host in any case, the default port written or not,
    percent-encoded characters, dot segments; and as browsers read a URL, WHATWG URL: ``\\``
    for ``/``, an internationalised host in any of its forms (IDNA, RFC 3490 §4: full-width
    letters, ``。``), an IP address in any notation): an address only Vigil answers."""
    return _within(app_settings.ISSUER, value)


@lru_cache(maxsize=1024)
def _within(issuer_url: str, value: str) -> bool:
    """Pure, so kept per input: introspection asks it of each served resource."""
    try:
        issuer, url = _parsed(issuer_url), _parsed(value)
        if not issuer.hostname or _origin(url) != _origin(issuer):
            return False
    except ValueError:  # an unreadable port or IPv6 literal: no URL at all
        return False
    base = _path(issuer).rstrip("/")
    path = _path(url)
    return path in {base, f"{base}/"} or path.startswith(f"{base}/")


def _parsed(value: str) -> SplitResult:
    return urlsplit(value.strip().replace("\\", "/"))


def _origin(url: SplitResult) -> tuple[str, str, int | None]:
    scheme = url.scheme.lower()
    return scheme, _host(url.hostname or ""), url.port or _DEFAULT_PORTS.get(scheme)


def _host(raw: str) -> str:
    """The host as every spelling of it resolves (WHATWG URL §3.5 host parsing, in short)."""
    host = unquote(raw).rstrip(".")
    try:
        host = host.encode("idna").decode("ascii").rstrip(".")  # nameprep: case, full-width, 。
    except UnicodeError:  # an empty or too long label: compared as written
        pass
    host = host.lower()
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):  # 127.1, 2130706433, 0x7f.0.0.1: an IPv4 address
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            pass
    return host


def _path(url: SplitResult) -> str:
    """The path, percent-decoded, its dot segments removed (RFC 3986 §5.2.4)."""
    path = unquote(url.path)
    return posixpath.normpath(path) + ("/" if path.endswith("/") and path != "/" else "") if path else ""
