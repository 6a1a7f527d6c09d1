"""The authorization endpoint's decisions (RFC 6749 §4.1.1, OIDC Core §3.1.2).

``begin`` takes the request's parameters from ``/par`` or a signed request object when it
names one (``idp.flows.authorize_request``: RFC 9126, RFC 9101), validates them through
Authlib (client, exact redirect URI, PKCE, scope, nonce), then applies what Authlib leaves
to us (``idp.flows.authorize_params``): ``prompt`` (with the ``select_account`` chooser),
``max_age``, ``acr_values`` and MFA policy (re-authentication or step-up), RFC 8707
``resource``, RFC 9449 §10 ``dpop_jkt``, ``response_mode`` and remembered consent. It
returns one ``Outcome`` the view renders. A bad client or redirect URI is never redirected
to; every other error goes back to the client, in the requested response mode, with
``state`` and ``iss``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError, UnsupportedResponseTypeError
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from accounts import authstate
from accounts.flows import browser_sessions
from core.acr import ACR_MFA, ACR_ORDER, acr_satisfies
from core.app_settings import app_settings
from core.events import EventType, record
from core.events import Outcome as EventOutcome  # this module's Outcome is the flow's result
from risk.stepup import acr_demanded_for, unanswered

from ..models import Consent
from ..oauth.errors import OAuthErrorCode
from ..oauth.server import VigilOAuth2Request, get_server
from ..scopes import describe_scopes
from . import authorize_params, authorize_request
from .authorize_params import AuthorizeParams, Prompt, requested_mode
from .authorize_response import client_redirect, deliver

if TYPE_CHECKING:
    from accounts.models import User
    from clients.models import Client

__all__ = ["Outcome", "OutcomeKind", "begin", "client_redirect", "required_acr"]

#: How far two servers' clocks may disagree when a sign-in made after a ``max_age`` demand is
#: judged against that ``max_age`` (it is judged by its id first: ``_needs_login``).
CLOCK_SKEW_ALLOWANCE = 300
LOGIN_MARK = "vigil_login_demanded_in"  # this request demanded a sign-in: the sign-in it had then
ACCOUNT_MARK = "vigil_account_chosen"


class OutcomeKind(StrEnum):
    RESPONSE = "response"  # a finished HTTP response: to the client, or to the login page
    CONSENT = "consent"
    SELECT_ACCOUNT = "select_account"
    ERROR = "error"


class ConsentDecision(StrEnum):
    """The answers of the consent page."""

    ALLOW = "allow"
    DENY = "deny"


class AccountChoice(StrEnum):
    """The answers of the ``prompt=select_account`` page."""

    CONTINUE = "continue"
    SWITCH = "switch"


@dataclass
class Outcome:
    """What the view does next: send ``response``, show consent or the chooser, or an error page."""

    kind: OutcomeKind
    response: HttpResponse | None = None
    error: str = ""
    description: str = ""
    context: dict[str, Any] = field(default_factory=dict)


def _mark_key(request: HttpRequest) -> str:
    return hashlib.sha256(request.META.get("QUERY_STRING", "").encode()).hexdigest()[:32]


def _remember(request: HttpRequest, name: str, now: int) -> None:
    """Note in the session that this very request (by its query) reached a step at ``now``."""
    _remember_for(request, name, _mark_key(request), now)


def _remember_for(request: HttpRequest, name: str, key: str, value: int | str) -> None:
    marks = dict(list(request.session.get(name, {}).items())[-10:])
    marks[key] = value
    request.session[name] = marks


def _forget(request: HttpRequest, name: str) -> None:
    marks = request.session.get(name, {})
    if _mark_key(request) in marks:
        request.session[name] = {k: v for k, v in marks.items() if k != _mark_key(request)}


def _recalled(request: HttpRequest, name: str) -> int | None:
    value = request.session.get(name, {}).get(_mark_key(request))
    return value if isinstance(value, int) else None


def note_sign_in_demanded(request: HttpRequest, key: str) -> None:
    """This request (``key``: what identifies it across the sign-in) demands a sign-in newer
    than the session's: noted with the sign-in the session has now (none: "")."""
    state = authstate.current(request)
    _remember_for(request, LOGIN_MARK, key, state.login_id if state is not None else "")


def signed_in_since_demanded(request: HttpRequest, state: authstate.AuthState | None, key: str) -> bool:
    """Whether a sign-in happened since ``note_sign_in_demanded(request, key)``: its id changed
    (no clocks compared, see ``_needs_login``)."""
    demanded_in = request.session.get(LOGIN_MARK, {}).get(key)
    return state is not None and isinstance(demanded_in, str) and state.login_id != demanded_in


def _error_outcome(request: HttpRequest, error: OAuth2Error, oauth_req: VigilOAuth2Request) -> Outcome:
    record(
        EventType.OAUTH_AUTHORIZE_ERROR,
        outcome=EventOutcome.FAILURE,
        reason=error.error or "",
        request=request,
        client_id=str(oauth_req.payload.data.get("client_id") or "")[:100],
        description=error.description,
        redirected=bool(error.redirect_uri),
    )
    if error.redirect_uri:
        error.state = oauth_req.payload.state
        mode = requested_mode(oauth_req.payload.data, error.redirect_uri)
        return Outcome(OutcomeKind.RESPONSE, response=deliver(request, error.redirect_uri, error.get_body(), mode))
    return Outcome(
        OutcomeKind.ERROR, error=error.error or OAuthErrorCode.INVALID_REQUEST, description=error.description or ""
    )


def required_acr(client: Client, user: User | None, requested: list[str]) -> str | None:
    """The weakest level that satisfies every demand: the request's, the client's, the user's,
    and a risk step-up's (``risk.stepup``)."""
    demands = list(requested)
    if client.require_mfa or app_settings.REQUIRE_MFA or getattr(user, "require_mfa", False):
        demands.append(ACR_MFA)
    if (risk_acr := acr_demanded_for(user, client)) is not None:
        demands.append(risk_acr)
    if not demands:
        return None
    return max(demands, key=ACR_ORDER.index)


def _needs_login(
    request: HttpRequest, state: authstate.AuthState | None, params: AuthorizeParams, client: Client, now: int
) -> tuple[bool, str, bool]:
    """Returns (needs_login, wanted_acr, force_full_login).

    A forced sign-in (``prompt=login``, ``max_age``, a risk step-up) is satisfied by any sign-in
    after this request demanded it: the session's sign-in id differs from the one noted with
    the demand (``login_redirect``). No clocks are compared, so web servers whose clocks
    disagree cannot send the browser round the login page for ever, and a sign-in as someone
    else satisfies it too (the mark outlives that session flush: ``authstate.CARRIED_ACROSS_SIGN_IN``).
    An open risk step-up demand forces a sign-in until the session's sign-in answered it (it
    completed while the demand was open: ``risk.stepup.answer_open_demands``), again by id: the
    code exchange asks the same (``risk.policy.unmet_demand``), so what this page lets through
    the token endpoint does not refuse, and what it refuses the user can answer."""
    fresh = signed_in_since_demanded(request, state, _mark_key(request))
    user = authstate.signed_in_user(request) if state is not None else None
    wanted = required_acr(client, user, params.acr_values) or ""
    if state is None:
        return True, wanted, False
    force = Prompt.LOGIN in params.prompt or _too_old(state.auth_time, params.max_age, now)
    if force and not (fresh and _recent_enough(state.auth_time, params.max_age, now)):
        return True, wanted, True
    if unanswered(state.login_id, user, client):
        return True, wanted, True  # a risk step-up needs a sign-in after the risk (risk.stepup)
    if wanted and not acr_satisfies(state.acr, wanted):
        return True, wanted, False
    return False, wanted, False


def _too_old(auth_time: int, max_age: int | None, now: int) -> bool:
    """OIDC Core §3.1.2.1: re-authenticate when more than ``max_age`` seconds have passed;
    ``max_age=0`` is equivalent to ``prompt=login``."""
    return max_age is not None and (max_age == 0 or now - auth_time > max_age)


def _recent_enough(auth_time: int, max_age: int | None, now: int) -> bool:
    """A sign-in made after the demand still meets ``max_age``, allowing for the clock of the
    server it was made on (a sign-in long ago in another tab does not)."""
    return max_age is None or now - auth_time <= max_age + CLOCK_SKEW_ALLOWANCE


def login_redirect(request: HttpRequest, wanted_acr: str, force: bool, login_hint: str) -> HttpResponse:
    note_sign_in_demanded(request, _mark_key(request))
    query = {"next": request.get_full_path(), "acr": wanted_acr, "force": "1" if force else ""}
    if login_hint:
        query["login_hint"] = login_hint[:150]
    return HttpResponseRedirect(f"{reverse('accounts:login')}?{urlencode(query)}")


def _checked_redirect_uri(server: Any, oauth_req: VigilOAuth2Request) -> str | None:
    """The redirect URI if client and URI are valid (RFC 6749 §4.1.2.1), else None."""
    client = server.query_client(oauth_req.payload.client_id)
    if client is None:
        return None
    redirect = oauth_req.payload.redirect_uri
    if not redirect:
        return client.get_default_redirect_uri()
    return redirect if isinstance(redirect, str) and client.check_redirect_uri(redirect) else None


def consent_grant(server: Any, oauth_req: VigilOAuth2Request) -> Any:
    """Authlib's validation; its error descriptions echo input, and refuse (ValueError)
    characters RFC 6749 forbids there, so such input becomes a plain invalid_request. Its
    ``unsupported_response_type`` describes itself with the bare value sent (its arguments
    are swapped), so that one is told what to send instead."""
    try:
        return server.get_consent_grant(oauth_req, end_user=None)
    except UnsupportedResponseTypeError as error:
        raise UnsupportedResponseTypeError(
            "code", "Only response_type=code is supported.", redirect_uri=error.redirect_uri
        ) from None
    except ValueError:
        safe_redirect = _checked_redirect_uri(server, oauth_req)
        raise InvalidRequestError("The request contains invalid characters.", redirect_uri=safe_redirect) from None


def _account_choice(
    request: HttpRequest,
    client: Client,
    params: AuthorizeParams,
    state: authstate.AuthState | None,
    account: str | None,
    now: int,
) -> Outcome | None:
    """OIDC Core §3.1.2.1 ``prompt=select_account``: a signed-in user continues as themself
    or signs this browser out and signs in as someone else. Asked once per request."""
    if Prompt.SELECT_ACCOUNT not in params.prompt or state is None or _recalled(request, ACCOUNT_MARK) is not None:
        return None
    if account == AccountChoice.CONTINUE:
        _remember(request, ACCOUNT_MARK, now)
        record(EventType.OAUTH_ACCOUNT_SELECTED, user=request.user, client_id=client.client_id, request=request)
        return None
    if account == AccountChoice.SWITCH:
        user = request.user
        browser_sessions.sign_out_current(request)
        _remember(request, ACCOUNT_MARK, now)
        record(EventType.OAUTH_ACCOUNT_SWITCHED, user=user, client_id=client.client_id, request=request)
        wanted = required_acr(client, None, params.acr_values) or ""
        return Outcome(OutcomeKind.RESPONSE, response=login_redirect(request, wanted, False, ""))
    return Outcome(OutcomeKind.SELECT_ACCOUNT, context={"client": client, "user": request.user})


def begin(
    request: HttpRequest, decision: str | None = None, account: str | None = None, now: int | None = None
) -> Outcome:
    """Run the authorization request; ``decision`` is the consent form's answer and
    ``account`` the account chooser's, if any."""
    moment = now if now is not None else int(timezone.now().timestamp())
    server = get_server()
    oauth_req = server.create_oauth2_request(request)
    try:
        client = server.query_client(oauth_req.payload.client_id)
        authorize_request.resolve(request, oauth_req, client, _checked_redirect_uri(server, oauth_req), moment)
        grant = consent_grant(server, oauth_req)
        params = authorize_params.parse(
            oauth_req.payload.data, oauth_req.payload.datalist, oauth_req.client, grant.redirect_uri,
            scope=oauth_req.scope or "",
        )
        return _decide(request, oauth_req, grant, params, decision, account, moment)
    except OAuth2Error as error:
        return _error_outcome(request, error, oauth_req)


def _decide(
    request: HttpRequest,
    oauth_req: VigilOAuth2Request,
    grant: Any,
    params: AuthorizeParams,
    decision: str | None,
    account: str | None,
    moment: int,
) -> Outcome:
    client, redirect_uri = oauth_req.client, grant.redirect_uri
    state = authstate.current(request)
    if (chooser := _account_choice(request, client, params, state, account, moment)) is not None:
        return chooser
    needs, wanted, force = _needs_login(request, state, params, client, moment)
    if needs or state is None:  # no state always needs a login
        if Prompt.NONE in params.prompt:
            raise LoginRequiredError(redirect_uri=redirect_uri)
        hint = oauth_req.payload.data.get("login_hint") or ""
        return Outcome(OutcomeKind.RESPONSE, response=login_redirect(request, wanted, force, hint))
    scope = oauth_req.scope or ""
    if decision == ConsentDecision.DENY:
        raise AccessDeniedError(redirect_uri=redirect_uri)
    consent = Consent.objects.filter(user_id=state.user_id, client=client).first()
    has_consent = client.first_party or (consent is not None and consent.covers(scope))
    if decision != ConsentDecision.ALLOW and (not has_consent or Prompt.CONSENT in params.prompt):
        if Prompt.NONE in params.prompt:
            raise ConsentRequiredError(redirect_uri=redirect_uri)
        context = {"client": client, "scopes": describe_scopes(scope, client), "user": request.user}
        return Outcome(OutcomeKind.CONSENT, context=context)
    if decision == ConsentDecision.ALLOW:
        _remember_consent(authstate.signed_in_user(request), client, scope)
    oauth_req.context.auth = state
    oauth_req.context.resources = params.resources
    oauth_req.context.code_dpop_jkt = params.dpop_jkt
    response_params = grant.issue_code(request.user)
    _forget(request, LOGIN_MARK)  # a demand answers one code: the same URL again signs in again
    authorize_request.release(request, oauth_req)
    record(
        EventType.OAUTH_AUTHORIZED,
        user=request.user,
        client_id=client.client_id,
        request=request,
        scope=scope,
        acr=state.acr,
        response_mode=params.response_mode.value,
        dpop_jkt_bound=bool(params.dpop_jkt),
    )
    return Outcome(OutcomeKind.RESPONSE, response=deliver(request, redirect_uri, response_params, params.response_mode))


def _remember_consent(user: User, client: Client, scope: str) -> None:
    consent, _ = Consent.objects.get_or_create(user=user, client=client)
    consent.scopes = sorted(set(consent.scopes) | set(scope.split()))
    consent.updated_at = timezone.now()
    consent.save(update_fields=["scopes", "updated_at"])
    record(EventType.OAUTH_CONSENT_GRANTED, user=user, client_id=client.client_id, scopes=consent.scopes)
