"""Checking access tokens presented to our own resource endpoints (userinfo) per
RFC 6750 §2 (Bearer) and RFC 9449 §7 (DPoP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from core import jwt_tokens
from core.acr import ACR_MFA
from core.events import EventType, Outcome, record
from core.policy import ResourceContext, apply_resource_policies
from core.resource_errors import ResourceError, ResourceErrorCode
from sessions.models import AccessToken, SessionStatus

from .dpop_resource import check_dpop_binding


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
            # RFC 6750 §3.1: another (or no) scheme is a request without our authentication: 401.
            raise ResourceError(ResourceErrorCode.INVALID_TOKEN, "Use the Bearer or DPoP scheme.", 401)
        if value.strip():
            return scheme.lower(), value.strip()
        raise ResourceError(ResourceErrorCode.INVALID_REQUEST, "Malformed Authorization header.", 400)
    if in_form:
        return "bearer", in_form[0]
    raise ResourceError(ResourceErrorCode.INVALID_TOKEN, "An access token is required.", 401)


def _form_tokens(request: HttpRequest) -> list[str]:
    """The form's non-empty ``access_token`` values (RFC 6750 §2.2: a form-encoded POST body only)."""
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        return [value for value in request.POST.getlist("access_token") if value]
    return []


def authorize(request: HttpRequest, *, required_scope: str | None = None) -> AuthorizedRequest:
    scheme, token = extract_token(request)
    try:
        claims = jwt_tokens.verify(token, typ="at+jwt")
    except jwt_tokens.TokenInvalid as exc:
        _refused(request, ResourceErrorCode.INVALID_TOKEN, str(exc))
        raise ResourceError(ResourceErrorCode.INVALID_TOKEN, "The access token is invalid or expired.") from exc
    record_ = AccessToken.objects.select_related("session", "user").filter(jti=str(claims.get("jti"))).first()
    if record_ is None or not record_.is_active(timezone.now()):
        raise _inactive(request, record_)
    try:
        _check_binding_and_policies(request, scheme, token, claims, record_)
    except ResourceError as error:
        _refused(request, error.error, error.description)
        raise
    if required_scope and required_scope not in str(claims.get("scope", "")).split():
        _refused(request, ResourceErrorCode.INSUFFICIENT_SCOPE, required_scope)
        raise ResourceError(ResourceErrorCode.INSUFFICIENT_SCOPE, f"The token lacks the {required_scope} scope.", 403)
    return AuthorizedRequest(claims=claims, token=record_)


def _check_binding_and_policies(
    request: HttpRequest, scheme: str, token: str, claims: dict[str, Any], record_: AccessToken
) -> None:
    """RFC 9449 §7 for a DPoP-bound token (or the DPoP scheme), then the resource policies
    (risk, device health). Their refusals are recorded by the caller, as every refusal here is."""
    bound = isinstance(claims.get("cnf"), dict) and "jkt" in claims["cnf"]
    if bound or scheme == "dpop":
        check_dpop_binding(request, scheme, token, claims)
    apply_resource_policies(ResourceContext(claims=claims, token=record_, request=request, now=timezone.now()))


def _inactive(request: HttpRequest, token: AccessToken | None) -> ResourceError:
    """Say truthfully why a well-signed token is refused: unknown, its user deactivated (no
    step-up can help then), its session awaits step-up (RFC 9470 §3
    ``insufficient_user_authentication``: the client sends the user through authorization
    for a fresh second factor), revoked, or expired."""
    session = token.session if token is not None else None
    if token is None:
        reason, error = "unknown", ResourceError(ResourceErrorCode.INVALID_TOKEN, "The access token is not known.")
    elif token.user is not None and not token.user.is_active:
        reason, error = "user_inactive", ResourceError(
            ResourceErrorCode.INVALID_TOKEN, "The access token's user is no longer active.")
    elif token.revoked_at is None and session is not None and session.status == SessionStatus.STEP_UP_REQUIRED:
        reason = "step_up_required"
        error = ResourceError(
            ResourceErrorCode.INSUFFICIENT_USER_AUTHENTICATION,
            "Step-up authentication is required: send the user through authorization again.",
            params={"acr_values": ACR_MFA},
        )
    elif token.revoked_at is not None or (session is not None and session.status == SessionStatus.REVOKED):
        reason, error = "revoked", ResourceError(ResourceErrorCode.INVALID_TOKEN, "The access token has been revoked.")
    else:
        reason, error = "expired", ResourceError(ResourceErrorCode.INVALID_TOKEN, "The access token has expired.")
    _refused(request, error.error, reason)
    return error


def _refused(request: HttpRequest, reason: str, detail: str) -> None:
    record(
        EventType.RESOURCE_TOKEN_REFUSED,
        outcome=Outcome.DENIED,
        reason=reason,
        request=request,
        detail=detail,
        path=request.path,
    )
