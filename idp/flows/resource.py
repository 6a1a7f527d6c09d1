"""Checking access tokens presented to our own resource endpoints (userinfo) per
RFC 6750 §2 (Bearer), RFC 9068 §4 (the audience) and RFC 9449 §7 (DPoP). Every refusal is a
``resource.token_refused`` event: ``reason`` the error answered, ``detail`` why (a
``Refusal``, what ``vigil_resource_token_refusals_total`` counts by), ``description`` the
error's text."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest
from django.utils import timezone

from core import jwt_tokens
from core.acr import ACR_MFA
from core.app_settings import app_settings
from core.events import EventType, Outcome, record
from core.policy import ResourceContext, apply_resource_policies
from core.resource_errors import AuthenticationRequired, ResourceError, ResourceErrorCode
from sessions.dpop import www_authenticate as dpop_challenge
from sessions.dpop.errors import ErrorCode as DPoPErrorCode
from sessions.models import AccessToken, SessionStatus

from ..oauth import resources
from .dpop_resource import check_dpop_binding

if TYPE_CHECKING:
    from accounts.models import User


class Refusal(StrEnum):
    """Why a request is refused, the ``detail`` of every ``resource.token_refused`` (and the
    ``reason`` of a request without our authentication, which answers no error)."""

    NO_TOKEN = "no_token"  # the reason: no token, or only a scheme we do not accept
    UNSUPPORTED_SCHEME = "unsupported_scheme"  # its detail when a scheme was sent
    MALFORMED_REQUEST = "malformed_request"  # invalid_request: two tokens, a header without one
    UNVERIFIABLE = "unverifiable"  # not one of our JWTs: malformed, unknown key, bad signature, issuer, typ
    UNKNOWN = "unknown"  # well signed, but no such token on record
    USER_INACTIVE = "user_inactive"
    CLIENT_INACTIVE = "client_inactive"
    STEP_UP_REQUIRED = "step_up_required"
    REVOKED = "revoked"
    EXPIRED = "expired"
    WRONG_AUDIENCE = "wrong_audience"  # RFC 9068 §4: its aud names neither this endpoint nor its client
    WRONG_SCHEME = "wrong_scheme"  # RFC 9449 §7.1: a DPoP-bound token as Bearer, or an unbound one as DPoP
    DPOP_PROOF_INVALID = "dpop_proof_invalid"  # RFC 9449 §7: no proof, or one that fails §4.3
    DPOP_NONCE_REQUIRED = "dpop_nonce_required"  # RFC 9449 §9: use_dpop_nonce, the client retries with it
    POLICY = "policy"  # a resource policy (risk, device health) refused it
    INSUFFICIENT_SCOPE = "insufficient_scope"  # RFC 6750 §3.1: the endpoint needs a scope it lacks
    NO_USER = "no_user"  # a client's own token (client credentials) where a user's is needed


#: RFC 9449 §7 refusals by the error they answer; any other (``invalid_token``) is the scheme's.
_DPOP_REFUSALS: dict[str, Refusal] = {
    DPoPErrorCode.INVALID_DPOP_PROOF: Refusal.DPOP_PROOF_INVALID,
    DPoPErrorCode.USE_DPOP_NONCE: Refusal.DPOP_NONCE_REQUIRED,
}


@dataclass
class AuthorizedRequest:
    claims: dict[str, Any]
    token: AccessToken


def extract_token(request: HttpRequest) -> tuple[str, str]:
    """``(scheme, token)`` from the Authorization header or, for POST, the form (RFC 6750 §2.2).
    A request using both, or repeating the form's ``access_token``, is RFC 6750 §3.1's
    ``invalid_request``: otherwise which token was judged depends on which one we read."""
    header = request.headers.get("Authorization", "")
    in_form = _form_tokens(request)
    if len(in_form) > 1 or (header and in_form):
        raise ResourceError(ResourceErrorCode.INVALID_REQUEST,
                            "Send one access token, in one way only (RFC 6750 section 2).", 400)
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in {"bearer", "dpop"}:
            raise AuthenticationRequired(challenges(), Refusal.UNSUPPORTED_SCHEME)
        if value.strip():
            return scheme.lower(), value.strip()
        raise ResourceError(ResourceErrorCode.INVALID_REQUEST, "Malformed Authorization header.", 400)
    if in_form:
        return "bearer", in_form[0]
    raise AuthenticationRequired(challenges(), Refusal.NO_TOKEN)


def challenges() -> list[str]:
    """The challenges of a request without our authentication (no token, or another scheme):
    RFC 6750 §3.1 says such a request "SHOULD NOT" get an error code or other error
    information, so each names only its scheme, our realm (the issuer) and, for DPoP, the proof
    algorithms we accept (RFC 9449 §7.1 ``algs``: ``SESSIONS_DPOP_ALGS``)."""
    realm = app_settings.ISSUER
    return [f'Bearer realm="{realm}"', dpop_challenge(realm=realm)]


def _presented(request: HttpRequest) -> tuple[str, str]:
    """``extract_token``, its refusals recorded: a request without our authentication has no
    error to record, so its reason is ``no_token`` (the detail says whether a scheme was sent)."""
    try:
        return extract_token(request)
    except AuthenticationRequired as missing:
        _refused(request, Refusal.NO_TOKEN, Refusal(missing.description))
        raise
    except ResourceError as error:
        _refused(request, error.error, Refusal.MALFORMED_REQUEST, error.description)
        raise


def _form_tokens(request: HttpRequest) -> list[str]:
    """The form's non-empty ``access_token`` values (RFC 6750 §2.2: a form-encoded POST body only)."""
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        return [value for value in request.POST.getlist("access_token") if value]
    return []


def authorize(request: HttpRequest, *, resource: str, required_scope: str | None = None) -> AuthorizedRequest:
    """The request's token, when it is one of ours, active, meant for ``resource`` (this
    endpoint's identifier: ``_check_audience``), bound as it says (RFC 9449 §7), allowed by the
    resource policies and of ``required_scope``; else the refusal, recorded."""
    scheme, token = _presented(request)
    claims = _verified(request, token)
    record_ = (AccessToken.objects.select_related("session__client", "user", "client")
               .filter(jti=str(claims.get("jti"))).first())
    if record_ is None or not record_.is_active(timezone.now()):
        raise _inactive(request, record_)
    _check_audience(request, claims, resource)
    _check_binding(request, scheme, token, claims)
    _check_policies(request, claims, record_)
    if required_scope and required_scope not in str(claims.get("scope", "")).split():
        error = ResourceError(ResourceErrorCode.INSUFFICIENT_SCOPE, f"The token lacks the {required_scope} scope.", 403)
        _refused(request, error.error, Refusal.INSUFFICIENT_SCOPE, error.description)
        raise error
    return AuthorizedRequest(claims=claims, token=record_)


def require_user(request: HttpRequest, authorized: AuthorizedRequest) -> User:
    """The token's user, for an endpoint about one (userinfo): a client's own token (client
    credentials) has none, ``invalid_token``."""
    user = authorized.token.user
    if user is not None and user.is_active:
        return user
    error = ResourceError(ResourceErrorCode.INVALID_TOKEN, "No user behind this token.",
                          scheme="DPoP" if _bound(authorized.claims) else "Bearer")
    _refused(request, error.error, Refusal.NO_USER, error.description)
    raise error


def _verified(request: HttpRequest, token: str) -> dict[str, Any]:
    """The claims of one of our access tokens (``jwt_tokens.verify``); past its ``exp``, ``expired``."""
    try:
        return jwt_tokens.verify(token, typ="at+jwt")
    except jwt_tokens.TokenInvalid as exc:
        why = Refusal.EXPIRED if isinstance(exc, jwt_tokens.TokenExpired) else Refusal.UNVERIFIABLE
        _refused(request, ResourceErrorCode.INVALID_TOKEN, why, str(exc))
        raise ResourceError(ResourceErrorCode.INVALID_TOKEN, "The access token is invalid or expired.") from exc


def _check_audience(request: HttpRequest, claims: dict[str, Any], resource: str) -> None:
    """RFC 9068 §4: the token's ``aud`` names ``resource`` or the token's own client
    (``idp.oauth.resources.accepted_at``). A token narrowed to another resource (RFC 8707) is
    that resource's alone: ``invalid_token`` (RFC 6750 §3.1), before its DPoP proof is spent or
    a policy runs, so its server cannot replay it here."""
    if resources.accepted_at(claims, resource):
        return
    error = ResourceError(
        ResourceErrorCode.INVALID_TOKEN,
        "The access token is not meant for this resource (its aud, RFC 9068 section 4): ask for one without "
        f"resource, or with resource={resource} beside the others.",
        scheme="DPoP" if _bound(claims) else "Bearer",
    )
    _refused(request, error.error, Refusal.WRONG_AUDIENCE, error.description)
    raise error


def _bound(claims: dict[str, Any]) -> bool:
    return isinstance(claims.get("cnf"), dict) and "jkt" in claims["cnf"]


def _check_binding(request: HttpRequest, scheme: str, token: str, claims: dict[str, Any]) -> None:
    """RFC 9449 §7 for a DPoP-bound token (or the DPoP scheme)."""
    if not (_bound(claims) or scheme == "dpop"):
        return
    try:
        check_dpop_binding(request, scheme, token, claims)
    except ResourceError as error:
        _refused(request, error.error, _DPOP_REFUSALS.get(error.error, Refusal.WRONG_SCHEME), error.description)
        raise


def _check_policies(request: HttpRequest, claims: dict[str, Any], record_: AccessToken) -> None:
    """The resource policies (risk, device health: ``core.policy``)."""
    try:
        apply_resource_policies(ResourceContext(claims=claims, token=record_, request=request, now=timezone.now()))
    except ResourceError as error:
        _refused(request, error.error, Refusal.POLICY, error.description)
        raise


#: The ``invalid_token`` description of each reason a well-signed token is inactive.
_INACTIVE = {
    Refusal.UNKNOWN: "The access token is not known.",
    Refusal.USER_INACTIVE: "The access token's user is no longer active.",
    Refusal.CLIENT_INACTIVE: "The access token's client is no longer active.",
    Refusal.REVOKED: "The access token has been revoked.",
    Refusal.EXPIRED: "The access token has expired.",
}


def _inactive(request: HttpRequest, token: AccessToken | None) -> ResourceError:
    """The refusal of a well-signed token that is not active, recorded with why (``_why_inactive``):
    ``invalid_token``, or for a session awaiting step-up RFC 9470 §3's
    ``insufficient_user_authentication`` (the client sends the user through authorization for a
    fresh second factor)."""
    reason = _why_inactive(token)
    if reason == Refusal.STEP_UP_REQUIRED:
        error = ResourceError(
            ResourceErrorCode.INSUFFICIENT_USER_AUTHENTICATION,
            "Step-up authentication is required: send the user through authorization again.",
            params={"acr_values": ACR_MFA},
        )
    else:
        error = ResourceError(ResourceErrorCode.INVALID_TOKEN, _INACTIVE[reason])
    _refused(request, error.error, reason, error.description)
    return error


def _why_inactive(token: AccessToken | None) -> Refusal:
    """Say truthfully why: unknown, its user or its client (or its family's, for an exchanged
    token) deactivated (no step-up can help then; ``AccessToken.clients_active``), its session
    awaits step-up, revoked, or expired."""
    if token is None:
        return Refusal.UNKNOWN
    if token.user is not None and not token.user.is_active:
        return Refusal.USER_INACTIVE
    if not token.clients_active():
        return Refusal.CLIENT_INACTIVE
    session = token.session
    if token.revoked_at is None and session is not None and session.status == SessionStatus.STEP_UP_REQUIRED:
        return Refusal.STEP_UP_REQUIRED
    if token.revoked_at is not None or (session is not None and session.status == SessionStatus.REVOKED):
        return Refusal.REVOKED
    return Refusal.EXPIRED


def _refused(request: HttpRequest, reason: str, detail: Refusal, description: str = "") -> None:
    """On record: the error answered (``reason``), why (``detail``) and the error's text."""
    record(
        EventType.RESOURCE_TOKEN_REFUSED,
        outcome=Outcome.DENIED,
        reason=reason,
        request=request,
        detail=detail,
        description=description,
        path=request.path,
    )
