"""Signing in with a passkey (WebAuthn L3 §7.2): passwordless, or as the second factor.

Passwordless uses discoverable credentials (empty ``allowCredentials``), also through
browser autofill (conditional mediation). As a second factor the options list the pending
user's credentials and the assertion must come from one of them.

amr (RFC 8176): ``hwk`` (device-bound) or ``swk`` (synced, backup-eligible) plus ``user``
(UV is always required), so ``normalise_amr`` adds ``mfa``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from webauthn.helpers.structs import AuthenticationCredential, CredentialDeviceType

from core.crypto import constant_time_equals
from core.encoding import b64url_encode
from core.events import EventType, Outcome, record

from .. import authstate, pending, webauthn_rp
from ..authstate import AuthState
from ..models import Passkey, User
from ..webauthn_rp import PasskeyError
from . import second_factor

PASSWORDLESS = "login"
SECOND_FACTOR = "second_factor"


def begin(request: HttpRequest, purpose: str, user: User | None = None, now: datetime | None = None) -> str:
    challenge = webauthn_rp.new_challenge(request, purpose, now)
    allow: list[tuple[str, list[str]]] = []
    if user is not None:
        allow = [(p.credential_id, list(p.transports or [])) for p in Passkey.objects.filter(user=user)]
    return webauthn_rp.authentication_options(allow, challenge)


def finish(
    request: HttpRequest,
    credential: Any,
    purpose: str,
    user: User | None,
    then: Callable[[Passkey, list[str]], AuthState],
    now: datetime | None = None,
) -> AuthState:
    """Verify the assertion, then ``then(passkey, amr methods)`` signs the session in.

    ``user`` is the pending user for a second factor, ``None`` for passwordless. Never
    throttled: an assertion cannot be guessed, so no failure of anyone else's (same address,
    same account) may stand between a user and their passkey (docs/operations.md "Throttling").
    The counter and the sign-in are one transaction: a session write that fails moves no
    counter, so the same assertion sent again is no regression (no "possible clone"). The
    challenge is spent once however the browser's requests overlap (``webauthn_rp.spending``).
    """
    moment = now or timezone.now()
    event = EventType.LOGIN_PASSKEY if purpose == PASSWORDLESS else EventType.LOGIN_SECOND_FACTOR
    try:
        with webauthn_rp.spending(request, purpose, credential, moment, malformed="malformed_assertion") as challenge:
            parsed = webauthn_rp.parse_assertion(credential)
            with transaction.atomic():
                passkey = _verify(parsed, challenge, user, moment)
                methods = [passkey.amr_key, "user"]
                record(event, user=passkey.user, request=request, method="passkey", passkey=passkey.pk, amr=methods)
                return then(passkey, methods)
    except PasskeyError as error:  # recorded outside the rolled-back transaction
        if error.passkey is not None:
            record(EventType.FACTOR_PASSKEY_SIGN_COUNT_REGRESSION, outcome=Outcome.DENIED, reason="possible_clone",
                   user=error.passkey.user, request=request, passkey=error.passkey.pk, detail=error.detail)
        record(event, outcome=Outcome.FAILURE, reason=error.code, user=user, request=request, method="passkey",
               detail=error.detail[:200])
        raise


def _verify(parsed: AuthenticationCredential, challenge: bytes, user: User | None, moment: datetime) -> Passkey:
    cred_id = b64url_encode(parsed.raw_id)
    with transaction.atomic():
        passkey = (
            Passkey.objects.select_for_update().select_related("user")
            .filter(credential_id=cred_id, user__is_active=True).first()
        )
        if passkey is None or (user is not None and passkey.user_id != user.pk):
            raise PasskeyError("unknown_credential")
        _check_user_handle(parsed, passkey, discoverable=user is None)
        verified = webauthn_rp.verify_assertion(parsed, challenge, bytes(passkey.public_key))
        be = verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
        if be != passkey.backup_eligible:  # §7.2 step 19: BE never changes for a credential
            raise PasskeyError("backup_eligibility_changed")
        if webauthn_rp.sign_count_regressed(passkey.sign_count, verified.new_sign_count):
            error = PasskeyError(
                "sign_count_regression", f"stored={passkey.sign_count} received={verified.new_sign_count}"
            )
            error.passkey = passkey
            raise error
        passkey.sign_count = verified.new_sign_count
        passkey.backup_state = bool(verified.credential_backed_up)
        passkey.last_used_at = moment
        passkey.save(update_fields=["sign_count", "backup_state", "last_used_at"])
    return passkey


def _check_user_handle(parsed: AuthenticationCredential, passkey: Passkey, discoverable: bool) -> None:
    """§7.2 step 6: the returned user handle, if any, must be the credential owner's; a
    discoverable (passwordless) assertion must carry one."""
    handle = parsed.response.user_handle
    if handle is None:
        if discoverable:
            raise PasskeyError("missing_user_handle")
        return
    if not constant_time_equals(b64url_encode(handle), passkey.user_handle):
        raise PasskeyError("user_handle_mismatch")


def passwordless(request: HttpRequest, credential: Any, now: datetime | None = None) -> AuthState:
    """A discoverable passkey alone signs the user in (a fresh session)."""

    def sign_in(passkey: Passkey, methods: list[str]) -> AuthState:
        pending.clear(request)
        state = authstate.establish(request, passkey.user, methods, now)
        record(EventType.LOGIN_COMPLETED, user=passkey.user, request=request, amr=state.amr, acr=state.acr,
               session_id=state.sid)
        return state

    return finish(request, credential, PASSWORDLESS, None, sign_in, now)


def as_second_factor(
    request: HttpRequest, state: pending.Pending, user: User, credential: Any, now: datetime | None = None
) -> AuthState:
    """One of the pending user's passkeys completes the login (or the step-up)."""
    return finish(request, credential, SECOND_FACTOR, user,
                  lambda _, methods: second_factor.complete(request, state, user, methods, now), now)
