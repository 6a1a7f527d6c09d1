"""The user's side of the device authorization grant (RFC 8628 §3.3): on ``/device`` a
signed-in user types the code their TV or terminal shows, sees which client asks for what,
and approves or denies.

- Typed codes are guesses of a secret: each lookup goes through the login throttle
  (``accounts.throttle``, scope ``ucode``), an unknown code is a failure with its delay.
- Approval needs the client's required ``acr`` (``idp.flows.authorize.required_acr``: the
  client's MFA requirement, the user's, the global one, a risk step-up); a weaker sign-in
  is sent through login for a step-up first, back to the same code.
- A risk step-up demand open for the user at the client is answered only by a sign-in that
  completed while it was open (``risk.stepup.answer_open_demands``, by the sign-in's id, no
  clocks): until then the page sends the user to sign in again (``force``). The approval
  keeps that sign-in's id, so the poll that starts the family is judged by it too
  (``risk.policy.unmet_demand``).
- §5.4 (remote phishing): the user always confirms on a page naming the client, even when
  the code came prefilled from ``verification_uri_complete``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from accounts import authstate, throttle
from accounts.flows import attempts
from core.acr import acr_satisfies
from core.events import EventType, record
from risk.stepup import unanswered

from ..models import DeviceAuthorization
from ..scopes import describe_scopes
from . import device_authorization
from .authorize import required_acr


class Step(StrEnum):
    ENTER = "enter"  # show the code form (with an error, perhaps)
    CONFIRM = "confirm"  # show the client and scopes, approve or deny
    LOGIN = "login"  # sign in (or step up) first: redirect
    DONE = "done"  # decided


@dataclass
class Page:
    step: Step
    error: str = ""
    retry_after: int | None = None
    redirect_to: str = ""
    context: dict[str, Any] = field(default_factory=dict)


def login_url(request: HttpRequest, user_code: str, acr: str = "", *, force: bool = False) -> str:
    """The login page, back to this code afterwards; ``force``: sign in again even when signed in."""
    next_url = f"{reverse('device')}?{urlencode({'user_code': user_code})}" if user_code else reverse("device")
    query = urlencode({"next": next_url, "acr": acr, "force": "1" if force else ""})
    return f"{reverse('accounts:login')}?{query}"


def handle(request: HttpRequest, typed: str, decision: str | None) -> Page:
    """One visit of the page: look the code up (throttled), check the sign-in, decide."""
    if not typed:
        return Page(Step.ENTER)
    user = authstate.signed_in_user(request)
    looked_up = _lookup(request, user, typed)
    if not isinstance(looked_up, DeviceAuthorization):
        return looked_up
    wanted = required_acr(looked_up.client, user, []) or ""
    state = authstate.current(request)
    stale = state is not None and unanswered(state.login_id, user, looked_up.client)
    if state is None or stale or (wanted and not acr_satisfies(state.acr, wanted)):
        return Page(Step.LOGIN, redirect_to=login_url(request, typed, wanted, force=stale))
    if decision not in ("approve", "deny"):
        return Page(Step.CONFIRM, context=_confirm_context(looked_up, typed))
    approve = decision == "approve"
    decided = device_authorization.decide(looked_up, user=user, auth=state, approve=approve, now=timezone.now())
    if not decided:
        return Page(Step.ENTER, error="This code has expired or was used already. Start again on your device.")
    record(EventType.OAUTH_DEVICE_AUTHORIZATION, reason="approved" if approve else "denied", user=user,
           client_id=looked_up.client.client_id, request=request)
    return Page(Step.DONE, context={"approved": approve, "client": looked_up.client})


def _lookup(request: HttpRequest, user: Any, typed: str) -> DeviceAuthorization | Page:
    account = user.get_username()
    try:
        attempt = attempts.admit(request, throttle.Scope.USER_CODE, account, EventType.OAUTH_DEVICE_USER_CODE,
                                 user=user)
    except throttle.Throttled as refused:
        return Page(Step.ENTER, error="Too many codes tried. Wait a moment and try again.",
                    retry_after=refused.retry_after)
    with attempts.judging(attempt):
        found = device_authorization.find_pending(typed, now=timezone.now())
    if found is None:
        attempts.fail(request, attempt, EventType.OAUTH_DEVICE_USER_CODE, attempts.Refusal.BAD_CODE, user=user)
        return Page(Step.ENTER, error="That code is not valid. Check the code on your device and try again.")
    throttle.succeeded(attempt)
    return found


def _confirm_context(found: DeviceAuthorization, typed: str) -> dict[str, Any]:
    return {"client": found.client, "scopes": describe_scopes(found.scope),
            "user_code": device_authorization.display(device_authorization.normalise(typed))}
