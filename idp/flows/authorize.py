"""The authorization endpoint's decisions (RFC 6749 §4.1.1, OIDC Core §3.1.2).

``begin`` validates the request through Authlib (client, exact redirect URI, PKCE,
scope, nonce), then applies what Authlib leaves to us: ``prompt``, ``max_age``,
``acr_values`` and MFA policy (re-authentication or step-up), RFC 8707 ``resource``
and remembered consent. It returns one ``Outcome`` the view renders. A bad client or
redirect URI is never redirected to; every other error goes back to the client with
``state`` and ``iss``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from accounts import authstate
from accounts.acr import ACR_MFA, ACR_ORDER, acr_satisfies
from sessions.risk.stepup import acr_demanded_for
from sessions.risk.stepup import open_since as step_up_open_since

from ..app_settings import app_settings
from ..events import record
from ..models import Consent
from ..oauth.errors import InvalidTargetError
from ..oauth.server import VigilOAuth2Request, add_issuer, get_server

PROMPTS = {"none", "login", "consent", "select_account"}
LOGIN_MARK = "vigil_login_demanded"


@dataclass
class Outcome:
    """What the view does next: ``redirect`` (to the client or to login), ``consent`` or ``error``."""

    kind: str
    response: HttpResponse | None = None
    error: str = ""
    description: str = ""
    context: dict[str, Any] = field(default_factory=dict)


def _mark_key(request: HttpRequest) -> str:
    return hashlib.sha256(request.META.get("QUERY_STRING", "").encode()).hexdigest()[:32]


def _error_outcome(request: HttpRequest, error: OAuth2Error, state: str | None) -> Outcome:
    record(
        "oauth.authorize_error",
        outcome="failure",
        reason=error.error or "",
        request=request,
        client_id=str(request.GET.get("client_id") or request.POST.get("client_id") or "")[:100],
        description=error.description,
        redirected=bool(error.redirect_uri),
    )
    if error.redirect_uri:
        error.state = state
        status, _, headers = error()
        return Outcome("redirect", response=add_issuer(client_redirect(dict(headers)["Location"])))
    return Outcome("error", error=error.error or "invalid_request", description=error.description or "")


def client_redirect(location: str) -> HttpResponse:
    """A 302 to a registered redirect URI; unlike HttpResponseRedirect it allows the
    private-use schemes of native apps (RFC 8252 §7.1), already checked for exact match."""
    response = HttpResponse(status=302)
    response["Location"] = location
    return response


def _parse_extras(oauth_req: VigilOAuth2Request, client: Any, redirect_uri: str) -> dict[str, Any]:
    data = oauth_req.payload.data
    prompt = set((data.get("prompt") or "").split())
    if not prompt <= PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise InvalidRequestError("Invalid 'prompt' parameter.", redirect_uri=redirect_uri)
    max_age = data.get("max_age")
    if max_age not in (None, ""):
        if not str(max_age).isdigit():
            raise InvalidRequestError("'max_age' must be a non-negative integer.", redirect_uri=redirect_uri)
        max_age = int(max_age)
    else:
        max_age = None
    resources = oauth_req.payload.datalist.get("resource", [])
    for resource in resources:
        parts = urlsplit(resource)
        if not parts.scheme or parts.fragment or resource not in client.allowed_audiences:
            raise InvalidTargetError(f"Resource {resource!r} is not allowed for this client.", redirect_uri=redirect_uri)
    wanted = [v for v in (data.get("acr_values") or "").split() if v in ACR_ORDER]
    return {"prompt": prompt, "max_age": max_age, "resources": resources, "acr_values": wanted}


def required_acr(client: Any, user: Any, requested: list[str]) -> str | None:
    """The weakest level that satisfies every demand: the request's, the client's, the user's,
    and a risk step-up's (``sessions.risk.stepup``)."""
    demands = list(requested)
    if client.require_mfa or app_settings.REQUIRE_MFA or getattr(user, "require_mfa", False):
        demands.append(ACR_MFA)
    if (risk_acr := acr_demanded_for(user, client)) is not None:
        demands.append(risk_acr)
    if not demands:
        return None
    return max(demands, key=ACR_ORDER.index)


def _needs_login(
    request: HttpRequest, state: Any, extras: dict[str, Any], client: Any, now: int
) -> tuple[bool, str, bool]:
    """Returns (needs_login, wanted_acr, force_full_login)."""
    demanded_at = request.session.get(LOGIN_MARK, {}).get(_mark_key(request))
    fresh = state is not None and demanded_at is not None and state.auth_time >= demanded_at
    user = request.user if state is not None else None
    wanted = required_acr(client, user, extras["acr_values"]) or ""
    if state is None:
        return True, wanted, False
    force = "login" in extras["prompt"] or (
        extras["max_age"] is not None and now - state.auth_time > extras["max_age"]
    )
    risk_since = step_up_open_since(user, client)
    if risk_since is not None and state.auth_time < int(risk_since.timestamp()):
        force = True  # a risk step-up needs an authentication newer than the risk
    if force and not fresh:
        return True, wanted, True
    if wanted and not acr_satisfies(state.acr, wanted):
        return True, wanted, False
    return False, wanted, False


def login_redirect(request: HttpRequest, wanted_acr: str, force: bool, login_hint: str, now: int) -> HttpResponse:
    marks = request.session.get(LOGIN_MARK, {})
    marks = dict(list(marks.items())[-10:])
    marks[_mark_key(request)] = now
    request.session[LOGIN_MARK] = marks
    query = {"next": request.get_full_path(), "acr": wanted_acr, "force": "1" if force else ""}
    if login_hint:
        query["login_hint"] = login_hint[:150]
    return HttpResponseRedirect(f"{reverse('accounts:login')}?{urlencode(query)}")


def _consent_grant(server: Any, oauth_req: VigilOAuth2Request) -> Any:
    """Authlib's validation; its error descriptions echo input, and refuse (ValueError)
    characters RFC 6749 forbids there, so such input becomes a plain invalid_request."""
    try:
        return server.get_consent_grant(oauth_req, end_user=None)
    except ValueError:
        client = server.query_client(oauth_req.payload.client_id)
        redirect = oauth_req.payload.redirect_uri
        safe_redirect = redirect if client is not None and redirect and client.check_redirect_uri(redirect) else None
        raise InvalidRequestError("The request contains invalid characters.", redirect_uri=safe_redirect) from None


def begin(request: HttpRequest, decision: str | None = None, now: int | None = None) -> Outcome:
    """Run the authorization request; ``decision`` is the consent form's answer, if any."""
    moment = now if now is not None else int(timezone.now().timestamp())
    server = get_server()
    oauth_req = server.create_oauth2_request(request)
    state_param = oauth_req.payload.state
    try:
        grant = _consent_grant(server, oauth_req)
        redirect_uri = grant.redirect_uri
        client = oauth_req.client
        extras = _parse_extras(oauth_req, client, redirect_uri)
        state = authstate.current(request)
        needs, wanted, force = _needs_login(request, state, extras, client, moment)
        if needs:
            if "none" in extras["prompt"]:
                raise LoginRequiredError(redirect_uri=redirect_uri)
            hint = oauth_req.payload.data.get("login_hint") or ""
            return Outcome("redirect", response=login_redirect(request, wanted, force, hint, moment))
        scope = oauth_req.scope or ""
        if decision == "deny":
            raise AccessDeniedError(redirect_uri=redirect_uri)
        consent = Consent.objects.filter(user=request.user, client=client).first()
        has_consent = client.first_party or (consent is not None and consent.covers(scope))
        if decision != "allow" and (not has_consent or "consent" in extras["prompt"]):
            if "none" in extras["prompt"]:
                raise ConsentRequiredError(redirect_uri=redirect_uri)
            return Outcome("consent", context={"client": client, "scopes": scope.split(), "user": request.user})
        if decision == "allow":
            _remember_consent(request.user, client, scope)
        oauth_req.vigil_auth = state
        oauth_req.vigil_resources = extras["resources"]
        response = server.create_authorization_response(oauth_req, grant_user=request.user, grant=grant)
        record("oauth.authorized", user=request.user, client_id=client.client_id, request=request, scope=scope, acr=state.acr)
        return Outcome("redirect", response=response)
    except OAuth2Error as error:
        return _error_outcome(request, error, state_param)


def _remember_consent(user: Any, client: Any, scope: str) -> None:
    consent, _ = Consent.objects.get_or_create(user=user, client=client)
    consent.scopes = sorted(set(consent.scopes) | set(scope.split()))
    consent.updated_at = timezone.now()
    consent.save(update_fields=["scopes", "updated_at"])
    record("oauth.consent_granted", user=user, client_id=client.client_id, scopes=consent.scopes)
