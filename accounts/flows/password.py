"""Password change: the other browser sessions are signed out, app sessions revoked and the
change announced (CAEP 1.0 §3.3 credential-change) through ``sessions.flows.revocation``."""

from __future__ import annotations

from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.forms import PasswordChangeForm
from django.db import transaction
from django.http import HttpRequest

from core.events import EventType
from sessions.flows import revocation
from sessions.flows.revocation import CredentialChange, CredentialType, Initiator, Reason

from .. import authstate, throttle
from ..models import User
from . import attempts, browser_sessions, device_sessions

#: Where a password guess was made, in its ``login.password`` event.
CHANGE_STEP = "password_change"


def attempt_change(request: HttpRequest, user: User, form: PasswordChangeForm) -> bool:
    """Check ``form`` (the current password and the new one) and change the password when it
    is valid. The current password is a guessable secret, as at sign-in: checked under the
    same throttle (``accounts.throttle``, scope ``pwd``, the same buckets), a wrong one
    recorded as a failed ``login.password``. Raises ``throttle.Throttled`` (recorded) when the
    guesses must wait."""
    account = user.get_username()
    attempt = attempts.admit(request, throttle.Scope.PASSWORD, account, EventType.LOGIN_PASSWORD, user=user,
                             step=CHANGE_STEP)
    with attempts.judging(attempt):
        valid = form.is_valid()
    if "old_password" in form.errors:
        attempts.fail(request, attempt, EventType.LOGIN_PASSWORD, attempts.Refusal.BAD_CREDENTIALS, user=user,
                      step=CHANGE_STEP)
        return False
    throttle.succeeded(attempt)  # the current password was right: the new one may still be refused
    if valid:
        change(request, user, form.cleaned_data["new_password1"])
    return valid


def change(request: HttpRequest, user: User, new_password: str) -> None:
    """Set the password; this session stays signed in (its key is rotated), others end. All in
    one transaction: a failure midway (the database gone) changes nothing, and the retry all,
    never a new password with the other sessions alive and the change unrecorded."""
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        old_key = request.session.session_key
        update_session_auth_hash(request, user)  # rotates this session's key
        state = authstate.current(request)
        if state is not None:
            browser_sessions.remember(request, user, state, old_key=old_key)
        signed_out = browser_sessions.sign_out_others(request, user, reason=Reason.PASSWORD_CHANGED)
        revoked = device_sessions.revoke_all(user, Reason.PASSWORD_CHANGED, request=request)
        revocation.credential_changed(
            user, EventType.PASSWORD_CHANGED, credential=CredentialType.PASSWORD, change=CredentialChange.UPDATE,
            request=request, browser_sessions=signed_out, device_sessions=revoked,
        )


def set_by_admin(request: HttpRequest, user: User, actor: User) -> None:
    """An admin set (or made unusable) ``user``'s password: their browser and app sessions
    end and the change is announced (CAEP 1.0 §3.3, ``initiating_entity: admin``)."""
    signed_out = browser_sessions.sign_out_others(request, user, reason=Reason.PASSWORD_SET_BY_ADMIN)
    revoked = device_sessions.revoke_all(user, Reason.PASSWORD_SET_BY_ADMIN, request=request)
    revocation.credential_changed(
        user, EventType.PASSWORD_SET_BY_ADMIN, credential=CredentialType.PASSWORD, change=CredentialChange.UPDATE,
        initiator=Initiator.ADMIN, request=request, actor=actor.get_username(), browser_sessions=signed_out,
        device_sessions=revoked,
    )
