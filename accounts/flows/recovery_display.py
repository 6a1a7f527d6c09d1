"""Showing new recovery codes exactly once, on the GET page a TOTP confirmation, a passkey
registration or a regeneration sends the browser to (Post/Redirect/Get,
``recovery_regenerate``).

:func:`keep` puts the new codes in the session; :func:`take` hands them to the page once. A
reload finds none in the session and a note that they were shown (``ALREADY_SHOWN``), so the
page says so instead of silently moving on. Two loads at once (a double load, a reload
before the first answer) both read the session before either saves it: the codes go to the
one that claims them in the shared cache first (``core.cache.claim``, atomic), the other is
told ``ALREADY_SHOWN``. The claim is keyed by a keyed hash of the set's codes, never the codes.

The codes stay in the session until a page takes them, and are taken only after the claim:
a cache that cannot be reached (``core.outage``: 503) leaves them there for the retry. A
response lost after the claim cannot be shown again: the reload says the codes were shown,
and the user makes new ones from the account page, which replaces them. Codes replaced
since they were kept (from another browser) are never shown (``recovery.still_valid``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import cache

from core import crypto
from core.cache import claim

from ..models import User
from . import recovery

NEW_CODES_SESSION_KEY = "vigil_new_recovery_codes"
SHOWN_SESSION_KEY = "vigil_recovery_codes_shown"


class Display(StrEnum):
    CODES = "codes"  # the codes, shown now for the first and only time
    ALREADY_SHOWN = "already_shown"  # shown before: a reload, or a second load racing the first
    NOTHING = "nothing"  # none to show (none made, or replaced since): send the browser on


@dataclass(frozen=True)
class ToShow:
    display: Display
    codes: list[str] = field(default_factory=list)


def keep(session: SessionBase, codes: list[str]) -> None:
    """Keep new codes for the page; without codes (a repeated form) the session is not written,
    so a repeat cannot erase what the request it repeats kept."""
    if codes:
        session[NEW_CODES_SESSION_KEY] = codes
        session.pop(SHOWN_SESSION_KEY, None)


def keep_saved(session: SessionBase, codes: list[str]) -> None:
    """``keep``, and the session written now, inside the caller's transaction (the session store
    is the database): a write that fails undoes what made the codes, and the retry makes them
    again, instead of codes replaced or a factor stored with its codes never shown."""
    keep(session, codes)
    session.save()


def take(session: SessionBase, user: User) -> ToShow:
    """The codes to show now, if this is the first load to take them."""
    kept = list(session.get(NEW_CODES_SESSION_KEY) or [])
    if not kept:
        return ToShow(Display.ALREADY_SHOWN if session.get(SHOWN_SESSION_KEY) else Display.NOTHING)
    codes = recovery.still_valid(user, kept)
    first = bool(codes) and claim(cache, _shown_key(codes), settings.SESSION_COOKIE_AGE)
    del session[NEW_CODES_SESSION_KEY]
    if not codes:
        return ToShow(Display.NOTHING)
    session[SHOWN_SESSION_KEY] = True
    return ToShow(Display.CODES, codes) if first else ToShow(Display.ALREADY_SHOWN)


def _shown_key(codes: list[str]) -> str:
    """One key per set of codes (the codes are random: no two sets share one)."""
    return "vigil:recovery-codes-shown:" + crypto.keyed_hash("recovery-codes-shown:" + " ".join(sorted(codes)))
