"""Factor changes that span kinds: removing TOTP under the MFA policy, an admin reset."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.events import EventType, Outcome, record
from sessions.flows.revocation import Initiator, Reason

from ..models import Passkey, User
from . import browser_sessions, device_sessions, passkeys, policy, recovery, totp
from .passkeys import FactorRemovalRefused


def remove_totp(request: HttpRequest, user: User) -> bool:
    """Remove the authenticator app, unless it is the last factor a required MFA depends on."""
    with transaction.atomic():
        list(TOTPDevice.objects.select_for_update().filter(user=user))
        list(Passkey.objects.select_for_update().filter(user=user))
        if not policy.can_remove_factor(user, "totp"):
            refused = True
        else:
            refused = False
            removed = totp.remove(user, request)
    if refused:
        record(EventType.FACTOR_TOTP_REMOVE, outcome=Outcome.DENIED, reason="last_factor", user=user, request=request)
        raise FactorRemovalRefused()
    if not policy.has_second_factor(user):
        recovery.delete_all(user, request, reason="no_second_factor_left")
    return removed


def reset_all(user: User, actor: User | None = None, request: HttpRequest | None = None) -> None:
    """Admin action: delete every second factor of ``user``, sign out their browsers and
    revoke their app sessions. A browser left signed in would keep its MFA sign-in (``acr``,
    admin access) and, in its recent-authentication window, could enroll a factor of its own at
    once: the reset is usually for a lost or stolen device, whose browser is among them.

    The user signs in with the password next time and, if policy requires MFA, enrolls again.
    One transaction: a failure midway changes nothing, never factors gone with the browsers
    and apps still signed in and no reset on record.
    """
    actor_name = actor.get_username() if actor is not None else ""
    with transaction.atomic():
        removed = list(Passkey.objects.select_for_update().filter(user=user))
        Passkey.objects.filter(user=user).delete()
        passkeys.announce_all_removed(request, user, removed, "admin_reset")
        had_totp = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        totp.remove(user, request, reason="admin_reset", initiator=Initiator.ADMIN)
        recovery.delete_all(user, request, reason="admin_reset")
        signed_out = browser_sessions.sign_out_others(request, user, reason=Reason.FACTORS_RESET)
        record(EventType.FACTOR_RESET, user=user, request=request, actor=actor_name, passkeys=len(removed),
               totp=had_totp, browser_sessions=signed_out)
        device_sessions.revoke_all(user, Reason.FACTORS_RESET, request=request)
