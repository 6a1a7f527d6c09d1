"""Replacing a user's recovery codes once per request the user meant, however often the
browser sends the form.

The new codes are shown once, on a GET page (Post/Redirect/Get): the view keeps them in this
session for ``/accounts/mfa/recovery/new/``, which shows them exactly once, a reload or a
racing second load being told they were shown (``recovery_display``). A browser may send the form twice (a double
click, a retry after a lost response) and display only the last answer. Were each POST a
regeneration, the first set (valid for an instant) would be replaced by a second, and under
concurrency the set shown could be one the other request had already replaced: a user who
wrote it down would hold no working codes.

Design: the form names the set it replaces. The profile page renders a hidden field,
``form_token``, made by ``form_token(user)``: a value signed for this use
(``core.signed_values``) that holds the user's id and the id of their current set of codes
(its ``StaticDevice``; 0 when there is none). Each regeneration of one user runs in one
transaction holding that user's row lock (``select_for_update``), so two submissions are
judged one after the other and the second sees what the first committed:

* the set the form names is still the current one: it is replaced, and the
  ``factor.recovery_codes.generated`` event recorded (``REGENERATED``), in that transaction;
* it is already gone: the form was sent again, or another page replaced that set since the
  form was shown (``REPEATED``). Nothing changes and nothing is recorded. The view sends the
  browser to the codes page too, which shows the codes this session is still to see (the
  first submission's), and never writes the session on a repeat, so a repeat that read the
  session before the regeneration saved it cannot erase the codes;
* a token that is missing, edited, another user's, made for another use or signed under a
  key since retired (the nearest a token comes to expiring: it names no time, and is spent
  when its set is replaced) changes nothing (``REFUSED``). The refusal is a security decision:
  ``factor.recovery_codes.regenerate``, ``denied``, its ``Refusal`` the reason; so is the
  refusal of a user with no second factor left to back up (``NO_SECOND_FACTOR``).

A token is spent by the regeneration it allows (the set it names is gone) and needs no
storage; loading the page again renders the new set's token, so a later, deliberate
regeneration works. Two pages loaded before either is sent name the same set: only the
first replaces it. The codes page shows only codes still stored (``recovery.still_valid``),
so codes replaced since (from another browser) are never shown. The regeneration saves its
codes in the session inside its transaction, before its COMMIT: a repeat's redirect, followed
the instant the lock lets the repeat go, finds them; and a session write that fails undoes
the regeneration, so the codes the user holds stay valid.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import StrEnum

from django.db import transaction
from django.http import HttpRequest
from django_otp.plugins.otp_static.models import StaticDevice

from core import events
from core.events import EventType
from core.signed_values import Purpose, dump, load

from ..models import User
from . import policy, recovery, recovery_display

_PAYLOAD = struct.Struct(">QQ")  # user id, id of the set of codes the form replaces
_MAX_TOKEN_CHARS = 100


class Outcome(StrEnum):
    REGENERATED = "regenerated"  # the set the form named was replaced by a new one
    REPEATED = "repeated"  # that set was already replaced: nothing changed
    NO_SECOND_FACTOR = "no_second_factor"  # recovery codes only back up TOTP or a passkey
    REFUSED = "refused"  # no valid token for this user: nothing changed


class Refusal(StrEnum):
    """Why a regeneration was refused (the ``factor.recovery_codes.regenerate`` event's reason)."""

    TOKEN_INVALID = "form_token_invalid"  # missing, edited, unsigned, too long, another use's, a retired key's
    TOKEN_OF_ANOTHER_USER = "form_token_of_another_user"  # signed by us, for another account
    NO_SECOND_FACTOR = "no_second_factor"  # nothing for recovery codes to back up


@dataclass(frozen=True)
class Regeneration:
    outcome: Outcome
    recovery_codes: list[str] = field(default_factory=list)  # plaintext, to show once


def form_token(user: User) -> str:
    """The hidden value of the regenerate form: "replace the set the user has now"."""
    return dump(Purpose.RECOVERY_REGENERATION, _PAYLOAD.pack(user.pk, _current_set(user)))


def regenerate(request: HttpRequest, user: User, token: str) -> Regeneration:
    """Replace the set ``token`` names, if it is still the user's current set."""
    named = _named_set(user, token)
    if isinstance(named, Refusal):
        _refused(request, user, named)
        return Regeneration(Outcome.REFUSED)
    with transaction.atomic():
        User.objects.select_for_update(no_key=True).only("pk").get(pk=user.pk)  # one regeneration of a user at a time
        if not policy.has_second_factor(user):
            _refused(request, user, Refusal.NO_SECOND_FACTOR)
            return Regeneration(Outcome.NO_SECOND_FACTOR)
        if _current_set(user) != named:
            return Regeneration(Outcome.REPEATED)
        codes = recovery.generate(user, request, reason="regenerated")
        recovery_display.keep_saved(request.session, codes)
        return Regeneration(Outcome.REGENERATED, codes)


def _refused(request: HttpRequest, user: User, reason: Refusal) -> None:
    events.record(
        EventType.FACTOR_RECOVERY_CODES_REGENERATE, outcome=events.Outcome.DENIED, reason=reason, user=user,
        request=request,
    )


def _named_set(user: User, token: str) -> int | Refusal:
    """The id of the set ``token`` names, or why it names none for ``user``."""
    payload = load(Purpose.RECOVERY_REGENERATION, token, max_chars=_MAX_TOKEN_CHARS)
    if payload is None or len(payload) != _PAYLOAD.size:
        return Refusal.TOKEN_INVALID
    user_id, set_id = _PAYLOAD.unpack(payload)
    return set_id if user_id == user.pk else Refusal.TOKEN_OF_ANOTHER_USER


def _current_set(user: User) -> int:
    """The id of the user's set of recovery codes (``recovery.generate`` makes one device per set)."""
    return StaticDevice.objects.filter(user=user).order_by("-pk").values_list("pk", flat=True).first() or 0
