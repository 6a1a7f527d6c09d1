"""The issuer's own URLs: its identifier (``IDP_ISSUER``, OpenID Connect Discovery §3
``issuer``) and every address below it, which Vigil itself answers (``/token``,
``/introspect``, ``/userinfo``...). The userinfo endpoint's URL is also a resource identifier
(RFC 8707; ``idp.oauth.resources``); no other client may be the resource server of any of
them (``clients.audiences``)."""

from __future__ import annotations

from urllib.parse import SplitResult, unquote, urlsplit

from .app_settings import app_settings

#: Where the userinfo endpoint answers, below the issuer (``idp.oauth_urls``).
USERINFO_PATH = "/userinfo"
_DEFAULT_PORTS = {"https": 443, "http": 80}


def userinfo_endpoint() -> str:
    """The userinfo endpoint's URL, as discovery publishes it: its resource identifier."""
    return f"{app_settings.ISSUER}{USERINFO_PATH}"


def within_issuer(value: str) -> bool:
    """Whether ``value`` is the issuer's URL or an address below it, however it is spelled
    (RFC 3986 §6.2.2-3: scheme and host in any case, the default port written or not,
    percent-encoded path characters): an address only Vigil answers."""
    issuer = urlsplit(app_settings.ISSUER)
    if not issuer.hostname:
        return False
    try:
        url = urlsplit(value.strip())
        same_origin = _origin(url) == _origin(issuer)
    except ValueError:  # an unreadable port: no URL at all
        return False
    base = unquote(issuer.path).rstrip("/")
    path = unquote(url.path)
    return same_origin and (path in {base, f"{base}/"} or path.startswith(f"{base}/"))


def _origin(url: SplitResult) -> tuple[str, str, int | None]:
    scheme = url.scheme.lower()
    return scheme, (url.hostname or "").rstrip("."), url.port or _DEFAULT_PORTS.get(scheme)
