"""An authorization request's real parameters: pushed (RFC 9126 §4), in a request object
(RFC 9101 §5; OIDC Core §6.1), or the query itself.

- ``request_uri`` from ``/par``: the pushed parameters replace the query's (RFC 9126 §4: the
  query carries only ``client_id`` and ``request_uri``). It is taken for one browser, named
  by a random binding cookie (``browser_cookie_name``) that every answer carries, a 503
  included (``core.outage.keep_cookie``); this browser keeps the request in its session while
  the user signs in and consents (the authorization request is revisited then), until a code
  is issued or ``HOLD_SECONDS`` pass. If the answer that took it failed (a 503: the session
  was not saved), the same browser's retry takes it again while it lives. Another browser,
  or this one after the code (its session says so), is refused (RFC 9126 §4: one-time use).
- ``request``: the signed object's parameters replace the query's (``idp.oauth.request_object``).
- ``request_uri`` equal to one the client registered (https): the signed object fetched from
  it (OIDC Core §6.2; ``idp.oauth.request_uri_fetch``). Any other URL is refused unfetched.
- A client that must push (``Client.par_required``) or sign (``require_signed_request_object``)
  is refused otherwise.

Every refusal goes back to the redirect URI only when that was checked against the
client's registration, and is a security event.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc9101.errors import InvalidRequestUriError
from django.conf import settings
from django.http import HttpRequest

from core.cookies import Cookie
from core.crypto import generate_token
from core.events import EventType, Outcome, record
from core.outage import keep_cookie

from ..oauth import par, request_object, request_uri_fetch
from ..oauth.request_object import ParamsPayload

if TYPE_CHECKING:
    from clients.models import Client

    from ..oauth.server import VigilOAuth2Request

#: How long a browser may take from the first visit of a pushed request to its code (seconds).
HOLD_SECONDS = 900
HOLD_KEY = "vigil_pushed_requests"
_BINDING = re.compile(r"[A-Za-z0-9_-]{43}")  # generate_token(32)


def resolve(
    request: HttpRequest, oauth_req: VigilOAuth2Request, client: Client | None, redirect_uri: str | None, now: int
) -> None:
    """Replace ``oauth_req``'s parameters with the pushed or signed ones, or refuse."""
    data = oauth_req.payload.data
    pushed, signed = "request_uri" in data, "request" in data
    if client is None:
        if pushed or signed:
            raise InvalidRequestError("A pushed or signed request needs the client_id of a registered client.")
        return  # Authlib's validation reports the unknown client
    if pushed and signed:
        raise InvalidRequestError("Send request or request_uri, not both (RFC 9101 section 5).",
                                  redirect_uri=redirect_uri)
    by_reference = pushed and request_uri_fetch.is_registered(data["request_uri"], client.request_uris or [])
    if pushed and not by_reference:
        params = _pushed(request, oauth_req, client, redirect_uri, now)
    elif client.par_required():
        record(EventType.OAUTH_PAR_REQUIRED, outcome=Outcome.DENIED, reason="not_pushed", client_id=client.client_id,
               request=request)
        raise InvalidRequestError("This client must push its authorization requests to /par first (RFC 9126).",
                                  redirect_uri=redirect_uri)
    elif by_reference:
        params = _fetched(request, client, data["request_uri"], redirect_uri, now)
    elif signed:
        params = request_object.decode(data["request"], client, redirect_uri=redirect_uri, request=request, now=now)
    elif client.require_signed_request_object:
        raise InvalidRequestError("This client must send its authorization request as a signed request object "
                                  "(RFC 9101).", redirect_uri=redirect_uri)
    else:
        return
    params["client_id"] = [client.client_id]
    oauth_req.payload = ParamsPayload(params)


def _fetched(
    request: HttpRequest, client: Client, request_uri: str, redirect_uri: str | None, now: int
) -> dict[str, list[str]]:
    """OIDC Core §6.2: the signed object at a URL the client registered (``request_uri_fetch``)."""
    try:
        raw = request_uri_fetch.fetch(request_uri, client_id=client.client_id)
    except request_uri_fetch.FetchFailed as failure:
        record(EventType.OAUTH_REQUEST_URI_REFUSED, outcome=Outcome.DENIED,
               reason=par.RequestUriProblem.FETCH_FAILED.value, client_id=client.client_id, request=request,
               description=str(failure))
        # The detail stays in the operator's log: told to the client, it would tell a closed
        # port from a TLS failure (RFC 9101 §10.4.1).
        raise InvalidRequestUriError(par.RequestUriProblem.FETCH_FAILED.description,
                                     redirect_uri=redirect_uri) from None
    return request_object.decode(raw, client, redirect_uri=redirect_uri, request=request, now=now)


def _mark(request_uri: str) -> str:
    return par.digest(request_uri)[:32]


def browser_cookie_name() -> str:
    """The cookie binding a taken pushed request to its browser, named after the session
    cookie: ``__Host-vigil_session_par`` under an https issuer (``core.cookies``)."""
    return f"{settings.SESSION_COOKIE_NAME}_par"


def browser_cookie() -> Cookie:
    """That cookie as ``keep_cookie`` sets it: host-only, Path=/, Secure as the session cookie."""
    return Cookie("pushed-request binding", browser_cookie_name(), "VIGIL_SESSION_COOKIE_NAME (its name + _par)",
                  secure=settings.SESSION_COOKIE_SECURE)


def _browser_binding(request: HttpRequest) -> str:
    """This browser's binding: the one its cookie carries, or a new one; set on the answer,
    whatever it is (a 503 included), so that the browser's retry is recognised."""
    cookie = browser_cookie()
    binding = request.COOKIES.get(cookie.name, "")
    if not _BINDING.fullmatch(binding):
        binding = generate_token(32)
    keep_cookie(request, cookie.name, binding, max_age=par.USED_MEMORY, secure=cookie.secure)
    return binding


def _refused(
    request: HttpRequest, client: Client, problem: par.RequestUriProblem, redirect_uri: str | None
) -> InvalidRequestUriError:
    """The refusal to raise, recorded as a security event."""
    record(EventType.OAUTH_REQUEST_URI_REFUSED, outcome=Outcome.DENIED, reason=problem.value,
           client_id=client.client_id, request=request)
    return InvalidRequestUriError(problem.description, redirect_uri=redirect_uri)


def _pushed(
    request: HttpRequest, oauth_req: VigilOAuth2Request, client: Client, redirect_uri: str | None, now: int
) -> dict[str, list[str]]:
    request_uri = oauth_req.payload.data["request_uri"]
    mark = _mark(str(request_uri))
    held = request.session.get(HOLD_KEY, {}).get(mark)
    if isinstance(held, dict) and held.get("client_id") == client.client_id and held.get("until", 0) >= now:
        if held.get("used"):  # this browser's code was issued: a replay (RFC 9126 §7.3)
            raise _refused(request, client, par.RequestUriProblem.REPLAYED, redirect_uri)
        oauth_req.context.pushed_mark = mark
        return {name: list(values) for name, values in held["params"].items()}
    taken = par.take(request_uri, client.client_id, _browser_binding(request))
    if isinstance(taken, par.RequestUriProblem):
        raise _refused(request, client, taken, redirect_uri)
    holds = dict(list(request.session.get(HOLD_KEY, {}).items())[-4:])
    holds[mark] = {"client_id": client.client_id, "params": taken.params, "until": now + HOLD_SECONDS}
    request.session[HOLD_KEY] = holds
    oauth_req.context.pushed_mark = mark
    return taken.params


def release(request: HttpRequest, oauth_req: VigilOAuth2Request) -> None:
    """The code is issued: this browser's hold on the pushed request ends with it, and stays
    as a mark that refuses the same request_uri again (its binding cookie would still match
    the claim while the pushed request lives). If this answer fails, the session is not
    saved and the retry finds the hold as it was."""
    mark = oauth_req.context.pushed_mark
    holds = request.session.get(HOLD_KEY, {})
    held = holds.get(mark) if mark else None
    if isinstance(held, dict):
        request.session[HOLD_KEY] = holds | {mark: {"client_id": held.get("client_id"), "until": held.get("until", 0),
                                                   "used": True}}
