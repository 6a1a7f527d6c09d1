"""Confirming a new authenticator app (RFC 6238) once, however often the browser sends it.

The first valid code confirms the pending device (replacing any older one) and, for a first
second factor, makes the first recovery codes, kept in the session (with the OTP proof, in
the confirmation's transaction) and shown once on a GET page (Post/Redirect/Get). A browser
may send the form twice (a double click, a retry after a lost response) and display only the
last answer: that answer must not read "That code is not valid" with a new secret while the
codes made by the first stay unseen.

Design, the simplest we found correct under concurrency: each confirmation of one user runs
in one transaction holding that user's row lock (``select_for_update(no_key=True)``), so two submissions
are judged one after the other and the second sees what the first committed. A submission
*repeats* the confirmation when no pending device is left and the confirmed device accepted
exactly this code within ``totp.REPEAT_WINDOW`` (the code of its last accepted time step,
``totp.is_last_accepted``; its ``last_t`` already refuses the code as a new proof, RFC 6238
§5.2). A repeat changes nothing: no device or secret, no codes, no event, no throttle
failure (its reservation is given back). The view answers it with the page that shows this
session's codes, if any are still unseen, and never writes the session on a repeat, so a
second request that read the session before the first saved it cannot erase the codes.
A response lost for good (its new session cookie with it: the confirmation renews the
session id, ``authstate.add_methods``) leaves the browser the old cookie, whose session is
gone: the retry is sent to sign in, changing nothing. Signed in again with the new app, the
browser comes back to this page, which shows a new secret; the code the user then types is
their confirmed app's (``ALREADY_SET_UP``): no failure, nothing changed, the browser sent on
with a note saying so. That answer is a security decision (the new secret stays unconfirmed
though a valid code of the account's app was shown), recorded as ``factor.totp.enroll``,
``denied``, reason ``already_set_up``, counted against nobody. A repeat stays unrecorded: it
is the decision the recorded confirmation made, sent again.
Anything else is judged as before: a wrong code is a throttled, recorded failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from core import events
from core.events import EventType
from sessions.flows import revocation
from sessions.flows.revocation import CredentialChange, CredentialType

from .. import authstate, throttle
from ..models import SealedTOTPDevice as TOTPDevice
from ..models import User
from . import attempts, policy, recovery, recovery_display, totp


class Outcome(StrEnum):
    CONFIRMED = "confirmed"  # this submission confirmed the pending device
    REPEATED = "repeated"  # the confirmation just made, sent again: nothing changed
    ALREADY_SET_UP = "already_set_up"  # a code of the app the user already has: nothing changed
    REFUSED = "refused"  # a wrong code, nothing pending, or too many attempts


@dataclass(frozen=True)
class Confirmation:
    outcome: Outcome
    recovery_codes: list[str] = field(default_factory=list)  # plaintext, to show once


def confirm(request: HttpRequest, user: User, code: str, now: datetime | None = None) -> Confirmation:
    """Judge ``code`` for the user's pending device; guesses are throttled like second-factor
    codes (``attempts.admit``)."""
    try:
        attempt = attempts.admit(
            request, throttle.Scope.SECOND_FACTOR, user.get_username(), EventType.FACTOR_TOTP_ENROLL, user=user
        )
    except throttle.Throttled:
        return Confirmation(Outcome.REFUSED)
    with attempts.judging(attempt), transaction.atomic():  # an outage here counts no failure
        User.objects.select_for_update(no_key=True).only("pk").get(pk=user.pk)  # one confirmation of a user at a time
        result = _judge(request, user, code, now or timezone.now())
        if result.outcome is Outcome.CONFIRMED:
            _prove_in_session(request, result)
    if result.outcome is Outcome.REFUSED:
        attempts.fail(request, attempt, EventType.FACTOR_TOTP_ENROLL, attempts.Refusal.BAD_CODE, user=user)
    elif result.outcome is Outcome.CONFIRMED:
        throttle.succeeded(attempt)
    else:
        throttle.abandoned(attempt)  # no guess at the new secret: nothing counted, nothing cleared
        if result.outcome is Outcome.ALREADY_SET_UP:
            _record_already_set_up(request, user)
    return result


def _record_already_set_up(request: HttpRequest, user: User) -> None:
    """The code was the confirmed app's, not the new secret's: that app stays, the new secret
    stays unconfirmed, and the decision is on record (it is no failure: nothing is counted)."""
    events.record(
        EventType.FACTOR_TOTP_ENROLL, outcome=events.Outcome.DENIED, reason=attempts.Refusal.ALREADY_SET_UP,
        user=user, request=request,
    )


def _prove_in_session(request: HttpRequest, result: Confirmation) -> None:
    """The session learns of the confirmation in its transaction: the code is a real OTP proof
    (``otp``, a new session id) and the first codes are kept for the page that shows them. The
    new session's row is written here, so a write that fails undoes the confirmation and the
    retry is judged afresh; committed apart, it left a confirmed app, codes nobody would see and
    a password-only session that the retry found sent to prove the app it had just set up."""
    recovery_display.keep(request.session, result.recovery_codes)
    authstate.add_methods(request, ["otp"])  # renews the session id: the new row holds it all


def _judge(request: HttpRequest, user: User, code: str, now: datetime) -> Confirmation:
    device = totp.unconfirmed_device(user)
    if device is not None and totp.verify_device(device.pk, code):
        _mark_confirmed(request, user, device.pk)
        if policy.has_recovery_codes(user):
            return Confirmation(Outcome.CONFIRMED)
        return Confirmation(Outcome.CONFIRMED, recovery.generate(user, request, reason="first_factor"))
    confirmed = totp.confirmed_device(user)
    if confirmed is None:
        return Confirmation(Outcome.REFUSED)
    if device is None and totp.accepted_moments_ago(confirmed, code, now):  # the confirmation, sent again
        return Confirmation(Outcome.REPEATED)
    return Confirmation(Outcome.ALREADY_SET_UP if _from_app(confirmed, code, now) else Outcome.REFUSED)


def _from_app(device: TOTPDevice, code: str, now: datetime) -> bool:
    """A code of the app already confirmed (the one it accepted moments ago, or a new one, then
    spent): the page was reached again after the confirmation (a retry whose answer was lost,
    signed in again) and the user typed the code their app shows. Their app works: no wrong guess."""
    return totp.accepted_moments_ago(device, code, now) or totp.verify_device(device.pk, code)


def _mark_confirmed(request: HttpRequest, user: User, device_pk: int) -> None:
    """The device counts from now on; any older one goes (a credential change, CAEP 1.0 §3.3)."""
    replaced = TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device_pk).count()
    TOTPDevice.objects.filter(user=user).exclude(pk=device_pk).delete()
    TOTPDevice.objects.filter(pk=device_pk).update(confirmed=True)
    revocation.credential_changed(
        user,
        EventType.FACTOR_TOTP_ENROLLED,
        credential=CredentialType.AUTHENTICATOR_APP,
        change=CredentialChange.UPDATE if replaced else CredentialChange.CREATE,
        request=request,
        device=device_pk,
        replaced=replaced,
    )
