"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2-§3).

A valid ``id_token_hint`` (expired is fine, it must be ours) names the client; a
``post_logout_redirect_uri`` is honoured only when registered for that client. Logging out
ends the browser session and revokes the token families born from it. A refused request
(a hint that is not our ID token, a ``client_id`` that contradicts it, an unregistered
``post_logout_redirect_uri``) changes nothing and is recorded as ``logout.refused``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from authlib.common.urls import add_params_to_uri
from django.contrib.auth import logout
from django.http import HttpRequest

from accounts import authstate
from accounts.flows import browser_sessions
from clients.models import Client
from core import jwt_tokens
from core.events import EventType, Outcome, record
from sessions.flows.revocation import Reason
from sessions.flows.tokens import revoke_browser_login
from sessions.models import DeviceSession


class LogoutProblem(StrEnum):
    """Why an RP-initiated logout request was refused (the ``reason`` of ``logout.refused``)."""

    BAD_HINT = "bad_id_token_hint"
    CLIENT_MISMATCH = "client_id_mismatch"
    UNREGISTERED_REDIRECT = "unregistered_post_logout_redirect_uri"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    LogoutProblem.BAD_HINT: "The id_token_hint is not a valid ID token from this provider.",
    LogoutProblem.CLIENT_MISMATCH: "client_id does not match the id_token_hint.",
    LogoutProblem.UNREGISTERED_REDIRECT: "The post_logout_redirect_uri is not registered for this client.",
}


@dataclass
class LogoutRequest:
    client: Client | None
    redirect_to: str | None
    hint_sid: str | None
    error: str = ""
    hint_sub: str | None = None


def parse(request: HttpRequest) -> LogoutRequest:
    """The request's client and redirect, or (recorded) why it is refused."""
    parsed, problem = _parse(request)
    if problem is not None:
        record(EventType.LOGOUT_REFUSED, outcome=Outcome.DENIED, reason=problem.value, request=request,
               user=request.user if request.user.is_authenticated else None,
               client_id=parsed.client.client_id if parsed.client else "", description=problem.description)
        parsed.error = problem.description
    return parsed


def _parse(request: HttpRequest) -> tuple[LogoutRequest, LogoutProblem | None]:
    data = request.POST if request.method == "POST" else request.GET
    hint = data.get("id_token_hint") or ""
    wanted_redirect = data.get("post_logout_redirect_uri") or ""
    client_id = data.get("client_id") or ""
    claims: dict[str, Any] = {}
    if hint:
        try:
            # An ID token (typ JWT): not an access token (at+jwt) or a logout token (logout+jwt),
            # both signed by the same key and naming the same subject (OIDC RP-Initiated Logout §2).
            claims = jwt_tokens.verify(hint, typ="jwt", check_exp=False)
        except jwt_tokens.TokenInvalid:
            return LogoutRequest(None, None, None), LogoutProblem.BAD_HINT
        aud = claims.get("aud")
        hint_client = aud[0] if isinstance(aud, list) and aud else aud
        if client_id and client_id != hint_client:
            return LogoutRequest(None, None, None), LogoutProblem.CLIENT_MISMATCH
        client_id = str(hint_client or "")
    client = Client.objects.active().filter(client_id=client_id).first() if client_id else None
    redirect_to = None
    if wanted_redirect:
        if client is None or wanted_redirect not in client.post_logout_redirect_uris:
            return LogoutRequest(client, None, None), LogoutProblem.UNREGISTERED_REDIRECT
        redirect_to = wanted_redirect
        if data.get("state"):
            redirect_to = add_params_to_uri(redirect_to, [("state", data["state"])])
    return LogoutRequest(client, redirect_to, claims.get("sid"), hint_sub=claims.get("sub")), None


def perform(request: HttpRequest, parsed: LogoutRequest) -> int:
    """End the OP session and revoke its token families; returns how many were revoked."""
    state = authstate.current(request)
    browser_sids = {state.sid} if state else set()
    if parsed.hint_sid:
        hinted = DeviceSession.objects.filter(sid=parsed.hint_sid).first()
        if hinted is not None and state is not None and hinted.user_id == state.user_id:
            browser_sids.add(hinted.browser_sid)
    revoked = sum(revoke_browser_login(sid, Reason.LOGOUT) for sid in browser_sids)
    user = request.user if request.user.is_authenticated else None
    browser_sessions.mark_ended(request)
    logout(request)
    client_id = parsed.client.client_id if parsed.client else ""
    record(EventType.LOGOUT, user=user, request=request, client_id=client_id, revoked=revoked)
    return revoked
