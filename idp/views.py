"""Protocol endpoints: each view parses, calls one flow or the Authlib server, renders."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from accounts.security import csp
from clients.models import ClientEndpoint
from core import events
from core.http_methods import allow_methods
from core.pages_only import api_endpoint
from core.resource_errors import ResourceError
from idp.flows.resource import authorize as authorize_resource
from idp.flows.resource import require_user
from idp.oauth.claims import userinfo_claims
from idp.oauth.errors import OAuthErrorCode
from idp.oauth.http_headers import NO_STORE
from idp.oauth.resources import userinfo_endpoint
from idp.oauth.server import get_server

from . import documents
from .flows import authorize as authorize_flow
from .flows import logout as logout_flow
from .flows import par as par_flow
from .scopes import StandardScope


def _json(payload: dict, status: int = 200) -> JsonResponse:
    return JsonResponse(payload, status=status, json_dumps_params={"separators": (",", ":")})


@allow_methods("GET")
def openid_configuration(request: HttpRequest) -> HttpResponse:
    return documents.openid_configuration().response()


@allow_methods("GET")
def jwks(request: HttpRequest) -> HttpResponse:
    return documents.jwks().response()


_AUTHORIZE_PAGES = {
    authorize_flow.OutcomeKind.CONSENT: "idp/consent.html",
    authorize_flow.OutcomeKind.SELECT_ACCOUNT: "idp/select_account.html",
}


#: Fields only our own pages (consent, account chooser) post back; such a POST needs CSRF.
_PAGE_ANSWERS = {"decision", "account"}


@never_cache
@csrf_exempt
@csp
@allow_methods("GET", "POST")
def authorize(request: HttpRequest) -> HttpResponse:
    """RFC 6749 §4.1.1 / OIDC Core §3.1.2.1, which requires GET and POST. A relying party's
    POSTed request becomes the same request as a GET (303), so it works like a link would;
    answers from our own pages are CSRF-checked. The form_post page sets its own, stricter CSP."""
    if request.method == "POST" and not _PAGE_ANSWERS & request.POST.keys():
        return _same_request_by_get(request)
    return _authorize_page(request)


def _same_request_by_get(request: HttpRequest) -> HttpResponse:
    """A relying party's POSTed request as the same request by GET (303): its form fields
    join the query (the query's win), so it is judged exactly as the GET would be."""
    params = [*request.GET.lists(), *((k, v) for k, v in request.POST.lists() if k not in request.GET)]
    return HttpResponseRedirect(f"{request.path}?{urlencode(params, doseq=True)}", status=303)


@csrf_protect
def _authorize_page(request: HttpRequest) -> HttpResponse:
    posted = request.POST if request.method == "POST" else {}
    outcome = authorize_flow.begin(request, decision=posted.get("decision"), account=posted.get("account"))
    if outcome.response is not None:
        return outcome.response
    if outcome.kind in _AUTHORIZE_PAGES:
        return render(request, _AUTHORIZE_PAGES[outcome.kind], outcome.context)
    return render(
        request,
        "idp/error.html",
        {"error": outcome.error, "description": outcome.description},
        status=400,
    )


def _oauth_post(request: HttpRequest, endpoint: str | None) -> HttpResponse:
    if request.method != "POST":
        response = _json({"error": OAuthErrorCode.INVALID_REQUEST, "error_description": "Use POST."}, 405)
        response["Allow"] = "POST"
        return response
    if request.content_type != "application/x-www-form-urlencoded":
        return _json(
            {"error": OAuthErrorCode.INVALID_REQUEST, "error_description": "Send application/x-www-form-urlencoded."},
            400,
        )
    server = get_server()
    try:
        with events.batched():
            if endpoint == ClientEndpoint.PAR:
                return par_flow.push(request)
            if endpoint is None:
                return server.create_token_response(request)
            return server.create_endpoint_response(endpoint, request)
    except ValueError:
        # Authlib refuses to echo characters RFC 6749 §5.2 forbids in error_description.
        return _json(
            {"error": OAuthErrorCode.INVALID_REQUEST, "error_description": "The request contains invalid characters."},
            400,
        )


@api_endpoint
@csrf_exempt
def token(request: HttpRequest) -> HttpResponse:
    return _oauth_post(request, None)


@api_endpoint
@csrf_exempt
def pushed_authorization_request(request: HttpRequest) -> HttpResponse:
    """RFC 9126 §2: ``POST /par`` (``idp.flows.par``)."""
    return _oauth_post(request, ClientEndpoint.PAR)


@api_endpoint
@csrf_exempt
def introspect(request: HttpRequest) -> HttpResponse:
    return _oauth_post(request, "introspection")


@api_endpoint
@csrf_exempt
def revoke(request: HttpRequest) -> HttpResponse:
    return _oauth_post(request, "revocation")


@api_endpoint
@csrf_exempt
def device_authorization(request: HttpRequest) -> HttpResponse:
    """RFC 8628 §3.1 (``idp.oauth.grants.device_code``)."""
    return _oauth_post(request, "device_authorization")


@csrf_exempt
@never_cache
@allow_methods("GET", "POST")
def userinfo(request: HttpRequest) -> HttpResponse:
    try:
        authorized = authorize_resource(request, resource=userinfo_endpoint(), required_scope=StandardScope.OPENID)
        user = require_user(request, authorized)
    except ResourceError as error:
        response = _json(error.body(), error.status)
        response["WWW-Authenticate"] = error.www_authenticate()  # RFC 6750 §3
        for name, value in [*error.headers.items(), *NO_STORE]:
            response[name] = value
        return response
    response = _json(userinfo_claims(user, authorized.claims.get("scope", "")))
    for key, value in NO_STORE:
        response[key] = value
    return response


#: The field only our own sign-out confirmation posts back; such a POST needs CSRF.
_LOGOUT_CONFIRMATION = "confirm"


@never_cache
@csrf_exempt
@allow_methods("GET", "POST")
def end_session(request: HttpRequest) -> HttpResponse:
    """OpenID Connect RP-Initiated Logout 1.0 §2: the OP MUST support GET and POST. A relying
    party's POSTed request (it has no CSRF token of ours) becomes the same request as a GET
    (303), exactly as ``authorize`` does; our own confirmation is CSRF-checked."""
    if request.method == "POST" and _LOGOUT_CONFIRMATION not in request.POST:
        return _same_request_by_get(request)
    return _end_session_page(request)


@csrf_protect
def _end_session_page(request: HttpRequest) -> HttpResponse:
    parsed = logout_flow.parse(request)
    if parsed.error:
        return render(
            request,
            "idp/error.html",
            {
                "error": OAuthErrorCode.INVALID_REQUEST,
                "description": parsed.error,
                "title": gettext("Sign-out request problem"),
                "heading": gettext("This sign-out request cannot be completed"),
            },
            status=400,
        )
    confirmed = request.method == "POST" and request.POST.get(_LOGOUT_CONFIRMATION) == "yes"
    hint_matches = request.user.is_authenticated and parsed.hint_sub == request.user.get_user_id()
    if not confirmed and request.user.is_authenticated and not hint_matches:
        hidden = dict((request.GET if request.method == "GET" else request.POST).items())
        return render(request, "idp/logout.html", {"client": parsed.client, "params": hidden})
    logout_flow.perform(request, parsed)
    if parsed.redirect_to:
        return authorize_flow.client_redirect(parsed.redirect_to)
    return render(request, "accounts/logged_out.html")
