"""Checking access tokens presented to our own resource endpoints (userinfo) per
RFC 6750 §2 (Bearer), RFC 9068 §4 (the audience) and RFC 9449 §7 (DPoP). Every refusal is a
``resource.token_refused`` event."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from core import jwt_tokens
from core.acr import ACR_MFA
from core.app_settings import app_settings
from core.events import EventType, Outcome, record
from core.policy import ResourceContext, apply_resource_policies
from core.resource_errors import AuthenticationRequired, ResourceError, ResourceErrorCode
from sessions.dpop import www_authenticate as dpop_challenge
from sessions.models import AccessToken, SessionStatus

from ..oauth import resources
from .dpop_resource import check_dpop_binding


class Refusal(StrEnum):
    """Why a request is refused, on record (``resource.token_refused``): the ``reason`` of a
    request without our authentication, the ``detail`` of an ``invalid_token`` for a token
    inactive or meant for another resource."""

    NO_TOKEN = "no_token"  # the reason: no token, or only a scheme we do not accept
    UNSUPPORTED_SCHEME = "unsupported_scheme"  # its detail when a scheme was sent
    UNKNOWN = "unknown"
    USER_INACTIVE = "user_inactive"
    CLIENT_INACTIVE = "client_inactive"
    STEP_UP_REQUIRED = "step_up_required"
    REVOKED = "revoked"
    EXPIRED = "expired"
    WRONG_AUDIENCE = "wrong_audience"  # RFC 9068 §4: its aud names neither this endpoint nor its client


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
        _refused(request, Refusal.NO_TOKEN, missing.description)
        raise
    except ResourceError as error:
        _refused(request, error.error, error.description)
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
    try:
        claims = jwt_tokens.verify(token, typ="at+jwt")
    except jwt_tokens.TokenInvalid as exc:
        _refused(request, ResourceErrorCode.INVALID_TOKEN, str(exc))
        raise ResourceError(ResourceErrorCode.INVALID_TOKEN, "The access token is invalid or expired.") from exc
    record_ = (AccessToken.objects.select_related("session__client", "user", "client")
               .filter(jti=str(claims.get("jti"))).first())
    if record_ is None or not record_.is_active(timezone.now()):
        raise _inactive(request, record_)
    _check_audience(request, claims, resource)
    try:
        _check_binding_and_policies(request, scheme, token, claims, record_)
    except ResourceError as error:
        _refused(request, error.error, error.description)
        raise
    if required_scope and required_scope not in str(claims.get("scope", "")).split():
        _refused(request, ResourceErrorCode.INSUFFICIENT_SCOPE, required_scope)
        raise ResourceError(ResourceErrorCode.INSUFFICIENT_SCOPE, f"The token lacks the {required_scope} scope.", 403)
    return AuthorizedRequest(claims=claims, token=record_)


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
    _refused(request, error.error, Refusal.WRONG_AUDIENCE)
    raise error


def _bound(claims: dict[str, Any]) -> bool:
    return isinstance(claims.get("cnf"), dict) and "jkt" in claims["cnf"]


def _check_binding_and_policies(
    request: HttpRequest, scheme: str, token: str, claims: dict[str, Any], record_: AccessToken
) -> None:
    """RFC 9449 §7 for a DPoP-bound token (or the DPoP scheme), then the resource policies
    (risk, device health). Their refusals are recorded by the caller, as every refusal here is."""
    if _bound(claims) or scheme == "dpop":
        check_dpop_binding(request, scheme, token, claims)
    apply_resource_policies(ResourceContext(claims=claims, token=record_, request=request, now=timezone.now()))


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
    _refused(request, error.error, reason)
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


def _refused(request: HttpRequest, reason: str, detail: str) -> None:
    record(
        EventType.RESOURCE_TOKEN_REFUSED,
        outcome=Outcome.DENIED,
        reason=reason,
        request=request,
        detail=detail,
        path=request.path,
    )
