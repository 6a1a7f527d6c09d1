"""The pushed authorization request endpoint, ``POST /par`` (RFC 9126 §2).

The client authenticates as at the token endpoint (RFC 9126 §2: every method it registered;
a public client names itself with ``client_id``). Its parameters, or those of the signed
request object it sends as ``request`` (RFC 9126 §3), are validated exactly as the
authorization endpoint will (Authlib's code grant with PKCE and OpenID checks, then
``idp.flows.authorize_params``), so a bad request fails here, in JSON, before any browser is
involved. A ``request_uri`` in the body is refused (§2.1). The answer is ``201`` with the
``request_uri`` and its ``expires_in`` (§2.2); every refusal is an RFC 6749 §5.2 body (§2.3),
never a redirect, recorded as ``oauth.par_refused``. A public client's pushes are counted per
address right after it is identified (``request_rates``, §2.3's 429), before anything is
decoded or stored.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from clients.models import Client, ClientEndpoint
from core.app_settings import app_settings
from core.events import EventType, Outcome, record

from ..oauth import fapi, par, request_object
from ..oauth.client_auth import CREDENTIAL_PARAMETERS
from ..oauth.dpop_binding import check_pushed_request
from ..oauth.errors import RateLimitedError
from ..oauth.grants.base import TOKEN_AUTH_METHODS
from ..oauth.http_headers import NO_STORE
from ..oauth.request_object import ParamsPayload
from ..oauth.server import VigilOAuth2Request, get_server
from . import authorize_params, request_rates
from .authorize import consent_grant

#: The most characters a pushed request's parameters may hold, a signed request object's own
#: bound (RFC 9126 leaves it to us). Every accepted push waits in the shared cache for its
#: lifetime and a public client's id is all it takes to push: unbounded, anyone could store
#: megabytes a request there, crowding out the replay caches that share it.
MAX_PUSHED_CHARACTERS = request_object.MAX_LENGTH


def push(request: HttpRequest, now: int | None = None) -> HttpResponse:
    moment = now if now is not None else int(timezone.now().timestamp())
    server = get_server()
    oauth_req = server.create_oauth2_request(request)
    signed = "request" in oauth_req.payload.data
    try:
        client = server.authenticate_client(oauth_req, TOKEN_AUTH_METHODS, ClientEndpoint.PAR)
        request_rates.admit(request_rates.Endpoint.PAR, client, request)
        params = pushed_params(request, oauth_req, client, moment)
        bind_to_proof(oauth_req, client, params)
        validate(oauth_req, client, params)
    except OAuth2Error as error:
        return _refused(request, oauth_req, error)
    lifetime = app_settings.PAR_REQUEST_URI_LIFETIME
    request_uri = par.push(client.client_id, params, lifetime)
    record(EventType.OAUTH_PAR_ACCEPTED, client_id=client.client_id, request=request,
           signed=signed, expires_in=lifetime)
    response = JsonResponse({"request_uri": request_uri, "expires_in": lifetime}, status=201)
    for key, value in NO_STORE:
        response[key] = value
    return response


def pushed_params(
    request: HttpRequest, oauth_req: VigilOAuth2Request, client: Client, now: int
) -> dict[str, list[str]]:
    """The request's parameters: the form's without the client's credentials, or the signed
    object's alone (RFC 9126 §3)."""
    form = oauth_req.payload.datalist
    if "request_uri" in form:
        raise InvalidRequestError("request_uri is not allowed at /par (RFC 9126 section 2.1).")
    if "request" in form:
        if len(form["request"]) > 1:
            raise InvalidRequestError("'request' may appear only once.")
        params = request_object.decode(form["request"][0], client, redirect_uri=None, request=request, now=now)
    elif client.require_signed_request_object:
        raise InvalidRequestError("This client must push a signed request object as 'request' (RFC 9101).")
    else:
        params = {name: list(values) for name, values in form.items() if name not in CREDENTIAL_PARAMETERS}
        if sum(len(name) + sum(map(len, values)) for name, values in params.items()) > MAX_PUSHED_CHARACTERS:
            raise InvalidRequestError(f"The pushed request holds more than {MAX_PUSHED_CHARACTERS} characters.")
    params["client_id"] = [client.client_id]
    return params


def bind_to_proof(oauth_req: VigilOAuth2Request, client: Client, params: dict[str, list[str]]) -> None:
    """RFC 9449 §10.1: a DPoP proof at ``/par`` binds the code to its key, as ``dpop_jkt``
    would; both sent must name the same key."""
    jkt = check_pushed_request(oauth_req, client)
    if jkt is None:
        return
    given = params.get("dpop_jkt") or []
    if given and given != [jkt]:
        raise InvalidRequestError("dpop_jkt does not name the key of the DPoP proof (RFC 9449 section 10.1).")
    params["dpop_jkt"] = [jkt]


def validate(oauth_req: VigilOAuth2Request, client: Client, params: dict[str, list[str]]) -> None:
    """The authorization endpoint's own checks, run now (RFC 9126 §2.1)."""
    oauth_req.payload = ParamsPayload(params)
    fapi.check_pushed(client, oauth_req.payload.data)
    grant = consent_grant(get_server(), oauth_req)
    authorize_params.parse(oauth_req.payload.data, oauth_req.payload.datalist, client, grant.redirect_uri,
                           scope=oauth_req.scope or "")


def _refused(request: HttpRequest, oauth_req: Any, error: OAuth2Error) -> HttpResponse:
    """RFC 9126 §2.3: the token endpoint's error format; nothing is redirected from here."""
    error.redirect_uri = None
    error.state = None
    if isinstance(error, RateLimitedError):  # recorded with its bucket by request_rates
        return get_server().handle_error_response(oauth_req, error)
    client_id = getattr(error, "auth_client_id", "") or str(oauth_req.payload.data.get("client_id") or "")
    record(EventType.OAUTH_PAR_REFUSED, outcome=Outcome.FAILURE, reason=error.error or "", client_id=client_id[:100],
           request=request, description=error.description)
    return get_server().handle_error_response(oauth_req, error)
