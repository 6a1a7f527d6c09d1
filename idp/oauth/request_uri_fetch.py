"""Fetching a request object by reference from a URL the client registered (OIDC Core §6.2,
RFC 9101 §5.2), and nothing else.

Only a ``request_uri`` equal to one in ``Client.request_uris`` (https, registered by an
operator) is fetched, so a request can never make Vigil reach an address of its choosing
(RFC 9101 §10.4.1 server-side request forgery). The fetch follows no redirect, verifies TLS,
gives up after ``DEADLINE`` seconds in all, reads at most ``request_object.MAX_LENGTH``
characters and accepts only ``application/oauth-authz-req+jwt`` (RFC 9101 §10.3) or
``application/jwt``. Every failure is ``invalid_request_uri`` (RFC 9101 §6.3), never a 500.
"""

from __future__ import annotations

import time

import requests

from .request_object import MAX_LENGTH

MEDIA_TYPES = ("application/oauth-authz-req+jwt", "application/jwt")
#: Seconds for the whole fetch (connect, headers and body).
DEADLINE = 3.0


class FetchFailed(Exception):
    """The registered URL did not give a request object; the message says why."""


def is_registered(request_uri: object, registered: list[str]) -> bool:
    return isinstance(request_uri, str) and request_uri.startswith("https://") and request_uri in registered


def fetch(request_uri: str) -> str:
    """The request object at a registered https ``request_uri``."""
    started = time.monotonic()
    try:
        with requests.get(request_uri, timeout=(DEADLINE, DEADLINE), allow_redirects=False, stream=True,
                          headers={"Accept": ", ".join(MEDIA_TYPES)}) as response:
            media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if response.status_code != 200 or media_type not in MEDIA_TYPES:
                raise FetchFailed(f"answered {response.status_code} {media_type or 'without a media type'}")
            return _body(response, started)
    except requests.RequestException as error:
        raise FetchFailed(type(error).__name__) from None


def _body(response: requests.Response, started: float) -> str:
    content = bytearray()
    for chunk in response.iter_content(chunk_size=4096):
        content.extend(chunk)
        if len(content) > MAX_LENGTH:
            raise FetchFailed("answered more than a request object")
        if time.monotonic() - started > DEADLINE:
            raise FetchFailed("too slow")
    try:
        return content.decode("ascii").strip()
    except UnicodeDecodeError:
        raise FetchFailed("answered something other than a compact JWS") from None
