"""Redirect URI matching: exact, with RFC 8252's loopback rule for native apps.

RFC 8252 §7.3: for a registered loopback IP redirect (``http://127.0.0.1/...`` or
``http://[::1]/...``) the port is chosen by the app at run time, so any port matches;
everything else (private-use schemes §7.1, claimed https §7.2, web apps) matches exactly.
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = {"127.0.0.1", "[::1]"}


def _loopback_without_port(uri: str) -> tuple[str, str, str, str] | None:
    try:
        parts = urlsplit(uri)
        host = parts.netloc.rsplit("@", 1)[-1]
        if host.startswith("["):
            hostname = host.split("]", 1)[0] + "]"
        else:
            hostname = host.split(":", 1)[0]
        parts.port  # noqa: B018 - raises ValueError on an invalid port
    except ValueError:
        return None
    if parts.scheme != "http" or hostname not in LOOPBACK_HOSTS or "@" in parts.netloc:
        return None
    return (hostname, parts.path, parts.query, parts.fragment)


def redirect_uri_matches(registered: str, presented: str) -> bool:
    if registered == presented:
        return True
    left = _loopback_without_port(registered)
    return left is not None and left == _loopback_without_port(presented)


def validate_redirect_uri_for_registration(uri: str, public: bool) -> str | None:
    """Return a reason the URI cannot be registered, or None."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "not a URI"
    if not parts.scheme:
        return "the URI needs a scheme"
    if parts.fragment:
        return "a redirect URI must not contain a fragment"
    if parts.scheme == "https":
        return None if parts.netloc else "https URIs need a host"
    if parts.scheme == "http":
        host = (parts.hostname or "").lower()
        if host in {"127.0.0.1", "::1", "localhost"}:
            return None
        return "plain http is only allowed for loopback redirects"
    if parts.scheme in {"javascript", "data", "file", "vbscript"}:
        return f"the {parts.scheme}: scheme is not allowed"
    # private-use URI scheme (RFC 8252 §7.1): reverse domain name expected.
    return None if "." in parts.scheme else "private-use schemes must be reverse domain names (com.example.app)"
