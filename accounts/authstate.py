"""What the browser session knows about how the user authenticated.

Stored in the Django session under ``vigil_auth``: ``auth_time`` (epoch seconds),
``amr`` (RFC 8176 values), ``sid`` (the OP session id used in ID tokens and logout) and
``login`` (a random id of this sign-in: every sign-in gets a new one, a step-up keeps it;
``signed_in`` announces each new one).
The authorization endpoint reads it to decide ``max_age``/``acr_values``/``prompt``: it asks
"has the user signed in since I demanded it?" by that id, never by comparing two servers'
clocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from django.contrib.auth import login as django_login
from django.core.exceptions import PermissionDenied
from django.dispatch import Signal
from django.http import HttpRequest
from django.utils import timezone

from core.acr import acr_for_amr, normalise_amr
from core.crypto import generate_token

from . import known_devices

if TYPE_CHECKING:
    from .models import User

SESSION_KEY = "vigil_auth"

#: Session keys that describe the browser's pending request, not its user, and so outlive a
#: sign-in as someone else (Django flushes the session then): apps add theirs in ``ready()``
#: (the authorization endpoint's "sign-in demanded" marks).
CARRIED_ACROSS_SIGN_IN: set[str] = set()

# Sent after a login or a step-up has changed what this session knows (``sender=AuthState``;
# ``request``, ``user``, ``state``, ``old_key``, ``now``): ``flows.browser_sessions`` records it.
auth_state_saved = Signal()
# Sent by ``establish`` alone, once per new sign-in (``sender=AuthState``; ``request``, ``user``,
# ``state``, ``now``): what happened after this sign-in, by its ``login_id``, is told from what happened
# before it without comparing clocks (``idp.flows.step_up`` answers the open risk step-up demands).
signed_in = Signal()


@dataclass(frozen=True)
class AuthState:
    user_id: int
    auth_time: int
    amr: list[str]
    sid: str
    login_id: str = ""

    @property
    def acr(self) -> str:
        return acr_for_amr(self.amr)

    @property
    def auth_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.auth_time, tz=UTC)


def establish(
    request: HttpRequest, user: User, amr: list[str], now: datetime | None = None, *, complete: bool = True
) -> AuthState:
    """Log the user in (a fresh session id, against fixation) and record how.

    ``complete=False``: a session that must enroll a required factor before it is a full
    sign-in. It recognises no device (``known_devices``) until that factor is proved
    (``add_methods``), so a password alone never mints a known device or a usual network."""
    moment = now or timezone.now()
    previous = current(request)
    old_key = request.session.session_key
    carried = {key: request.session[key] for key in CARRIED_ACROSS_SIGN_IN if key in request.session}
    django_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session.update(carried)
    sid = previous.sid if previous and previous.user_id == user.pk else generate_token(16)
    state = AuthState(user_id=user.pk, auth_time=int(moment.timestamp()), amr=normalise_amr(amr), sid=sid,
                      login_id=generate_token(12))
    request.session[SESSION_KEY] = _stored(state)
    auth_state_saved.send(sender=AuthState, request=request, user=user, state=state, old_key=old_key, now=moment)
    signed_in.send(sender=AuthState, request=request, user=user, state=state, now=moment)
    if complete:
        known_devices.remember(request, user, moment)
    return state


def add_methods(request: HttpRequest, methods: list[str], now: datetime | None = None) -> AuthState | None:
    """A further factor (step-up, or the enrollment of a required one) on the same session:
    amr grows, auth_time moves on, and the device is recognised as after a full sign-in."""
    state = current(request)
    if state is None:
        return None
    moment = now or timezone.now()
    amr = normalise_amr([*state.amr, *methods])
    request.session[SESSION_KEY] = _stored(AuthState(
        user_id=state.user_id, auth_time=int(moment.timestamp()), amr=amr, sid=state.sid, login_id=state.login_id))
    old_key = request.session.session_key
    request.session.cycle_key()
    new_state = current(request)
    if new_state is not None:
        known_devices.remember(request, signed_in_user(request), moment)  # every factor asked for is proved
        auth_state_saved.send(
            sender=AuthState,
            request=request,
            user=signed_in_user(request),
            state=new_state,
            old_key=old_key,
            now=moment,
        )
    return new_state


def _stored(state: AuthState) -> dict[str, object]:
    return {"auth_time": state.auth_time, "amr": state.amr, "sid": state.sid, "login": state.login_id}


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a view behind ``login_required``: its user is signed in (for the type
    checker; Django builds the request as always)."""

    user: User


def signed_in_user(request: HttpRequest) -> User:
    """``request.user`` where a sign-in is already established (an ``AuthState`` exists)."""
    if not request.user.is_authenticated:
        raise PermissionDenied("not signed in")
    return request.user  # narrowed: only a User is authenticated


def current(request: HttpRequest) -> AuthState | None:
    user = getattr(request, "user", None)
    data = request.session.get(SESSION_KEY)
    if not data or user is None or not user.is_authenticated:
        return None
    try:
        return AuthState(user_id=user.pk, auth_time=int(data["auth_time"]), amr=list(data["amr"]), sid=str(data["sid"]),
                         login_id=str(data.get("login", "")))
    except (KeyError, TypeError, ValueError):
        return None
