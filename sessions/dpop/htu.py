"""Comparison of the ``htu`` claim with the request URI (RFC 9449 §4.3 check 9).

Query and fragment are ignored. Both sides get RFC 3986 §6.2.2 syntax-based normalisation
(case of scheme and host, percent-encoding case, unreserved characters decoded, dot
segments removed) and §6.2.3 scheme-based normalisation (default port dropped, empty path
is ``/``). Only ``http`` and ``https`` URIs with a host and no userinfo compare equal.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_FORBIDDEN_RE = re.compile(r"[\x00-\x20\x7f]")  # urlsplit silently drops tab/CR/LF: refuse them


def _percent(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4."""
    output: list[str] = []
    for segment in path.split("/")[1:] if path.startswith("/") else path.split("/"):
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    trailing = path.endswith(("/.", "/..")) or path in {".", ".."}
    return "/" + "/".join(output) + ("/" if trailing and output else "")


def normalize_http_uri(uri: str) -> str | None:
    """``scheme://host[:port]/path`` in normal form, or None when ``uri`` is not an HTTP(S) URI."""
    if not isinstance(uri, str) or _FORBIDDEN_RE.search(uri):
        return None
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = remove_dot_segments(_PERCENT_RE.sub(_percent, parts.path)) if parts.path else "/"
    return f"{scheme}://{netloc}{path}"


def htu_matches(htu: str, request_uri: str) -> bool:
    """True when the proof's ``htu`` names the request URI (RFC 9449 §4.3 check 9)."""
    claimed, actual = normalize_http_uri(htu), normalize_http_uri(request_uri)
    return claimed is not None and claimed == actual
