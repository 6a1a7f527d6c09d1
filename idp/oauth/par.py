"""Where pushed authorization requests wait for the browser (RFC 9126 §2.2, §4).

A pushed request is kept in the cache under the SHA-256 of its random ``request_uri``
(``urn:ietf:params:oauth:request_uri:`` + 256 bits), bound to the client that pushed it, for
``IDP_PAR_REQUEST_URI_LIFETIME`` seconds (default 60; FAPI 2.0 §5.3.2.2 wants under 600).
``take`` hands it to one browser only (RFC 9126 §4 one-time use, §7.3 replay): the first take
claims it for that browser with an atomic cache add of the browser's binding (its SHA-256),
which decides which of two racing browsers wins; the same browser taking it again while the
request lives (its retry after a 503) gets it again, anyone else is told it was used. The
claim is remembered for an hour, so a replay is told apart from an unknown value. Ending the
browser's use once its code is issued is ``idp.flows.authorize_request``'s (its session).
A ``request_uri`` of any other form
(an external URL) is refused here; only a URL the client registered is fetched
(``idp.oauth.request_uri_fetch``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from enum import StrEnum

from django.core.cache import cache

from core.crypto import generate_token

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
_KEY = "vigil:par:"
_USED = "vigil:par-used:"
#: How long a used request_uri is remembered as used (seconds).
USED_MEMORY = 3600


class RequestUriProblem(StrEnum):
    """Why a ``request_uri`` was refused (the ``reason`` of ``oauth.request_uri_refused``)."""

    NOT_PUSHED = "not_pushed"  # not of our PAR form: an external URL or anything else
    UNKNOWN = "unknown_or_expired"
    REPLAYED = "replayed"
    WRONG_CLIENT = "wrong_client"
    FETCH_FAILED = "fetch_failed"  # a registered URL did not give a request object

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    RequestUriProblem.NOT_PUSHED: "Only request_uri values issued by this server's /par endpoint (RFC 9126), or "
    "https URLs registered for this client, are accepted; nothing else is fetched.",
    RequestUriProblem.UNKNOWN: "The request_uri is unknown or expired: push the request to /par again.",
    RequestUriProblem.REPLAYED: "The request_uri was already used: push the request to /par again "
    "(RFC 9126 section 4, one-time use).",
    RequestUriProblem.WRONG_CLIENT: "The request_uri was pushed by another client (RFC 9126 section 4).",
    RequestUriProblem.FETCH_FAILED: "The request object could not be fetched from the registered request_uri",
}


@dataclass(frozen=True)
class Pushed:
    """A pushed request: the client that pushed it and its parameters (repeated ones kept)."""

    client_id: str
    params: dict[str, list[str]]


def digest(value: str) -> str:
    """The SHA-256 (hex) a ``request_uri`` is kept and marked under, never the value itself."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def push(client_id: str, params: dict[str, list[str]], lifetime: int) -> str:
    """Store the request; returns its ``request_uri`` (RFC 9126 §2.2)."""
    request_uri = REQUEST_URI_PREFIX + generate_token(32)
    value = json.dumps({"client_id": client_id, "params": params}, separators=(",", ":"))
    cache.set(_KEY + digest(request_uri), value, lifetime)
    return request_uri


def take(request_uri: object, client_id: str, browser: str) -> Pushed | RequestUriProblem:
    """The pushed request for ``browser`` (an unguessable value bound to one browser), or why
    not. A request_uri named by another client is refused and left in place (its own client
    may still use it); one claimed by another browser is ``REPLAYED``."""
    if not isinstance(request_uri, str) or not request_uri.startswith(REQUEST_URI_PREFIX) or len(request_uri) > 200:
        return RequestUriProblem.NOT_PUSHED
    key = digest(request_uri)
    raw = cache.get(_KEY + key)
    if raw is None:
        return RequestUriProblem.REPLAYED if cache.get(_USED + key) else RequestUriProblem.UNKNOWN
    stored = json.loads(raw)
    if stored["client_id"] != client_id:
        return RequestUriProblem.WRONG_CLIENT
    if not _claimed_by(key, digest(browser)):
        return RequestUriProblem.REPLAYED
    return Pushed(stored["client_id"], {name: list(values) for name, values in stored["params"].items()})


def _claimed_by(key: str, claimant: str) -> bool:
    """Claim the request for ``claimant`` unless it is claimed already (the cache's atomic add
    decides a race); whether ``claimant`` holds it."""
    if cache.add(_USED + key, claimant, USED_MEMORY):
        return True
    holder = cache.get(_USED + key)
    return isinstance(holder, str) and hmac.compare_digest(holder, claimant)
