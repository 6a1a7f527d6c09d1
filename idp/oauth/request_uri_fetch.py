"""Fetching a request object by reference from a URL the client registered (OIDC Core §6.2,
RFC 9101 §5.2), and nothing else.

Only a ``request_uri`` equal to one in ``Client.request_uris`` (https, registered by an
operator) is fetched, so a request can never make Vigil reach an address of its choosing
(RFC 9101 §10.4.1 server-side request forgery); and since the client controls its host's
DNS, the fetch goes through ``core.outbound``, which refuses a host that resolves to a
loopback, private, link-local or metadata address and connects to the address it vetted.
The fetch follows no redirect, verifies TLS, gives up after ``DEADLINE`` seconds in all,
reads at most ``request_object.MAX_LENGTH`` characters and accepts only
``application/oauth-authz-req+jwt`` (RFC 9101 §10.3) or ``application/jwt``. Every failure
is ``FetchFailed`` (``invalid_request_uri``, RFC 9101 §6.3, never a 500); its message is for
the operator's log only: the client is told no more than that the fetch failed.
"""

from __future__ import annotations

from core import outbound

from .request_object import MAX_LENGTH

MEDIA_TYPES = ("application/oauth-authz-req+jwt", "application/jwt")
#: Seconds for the whole fetch (connect, TLS handshake, headers and body).
DEADLINE = 3.0


class FetchFailed(Exception):
    """The registered URL did not give a request object; the message says why (for the log)."""


def is_registered(request_uri: object, registered: list[str]) -> bool:
    return isinstance(request_uri, str) and request_uri.startswith("https://") and request_uri in registered


def fetch(request_uri: str, *, client_id: str = "") -> str:
    """The request object at a registered https ``request_uri``."""
    try:
        reply = outbound.request("GET", request_uri, purpose=outbound.Purpose.REQUEST_URI, deadline=DEADLINE,
                                 max_bytes=MAX_LENGTH, headers={"Accept": ", ".join(MEDIA_TYPES)},
                                 event_fields={"client_id": client_id})
    except outbound.TooSlow:
        raise FetchFailed("too slow") from None
    except outbound.OutboundError as failure:
        raise FetchFailed(str(failure)) from None
    return _object(reply)


def _object(reply: outbound.Reply) -> str:
    if reply.status != 200 or reply.media_type not in MEDIA_TYPES:
        raise FetchFailed(f"answered {reply.status} {reply.media_type or 'without a media type'}")
    if reply.oversize:
        raise FetchFailed("answered more than a request object")
    try:
        return reply.body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise FetchFailed("answered something other than a compact JWS") from None
