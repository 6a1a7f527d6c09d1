"""Guesses of a secret (password, TOTP or recovery code) through the throttle, each decision
recorded: a refusal (``outcome="denied"``, ``reason="throttled"``, the wait, the bucket and
the basis the source was recognised on) and a failure with the delay it now imposes.
Model and numbers: ``accounts/throttle.py``, docs/operations.md "Throttling"."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from django.http import HttpRequest
from django.utils.translation import ngettext

from core.events import EventType, Outcome, record

from .. import known_devices, throttle
from ..models import User


class Refusal(StrEnum):
    """Why a guess of a secret was refused (the event's ``reason`` and the refusal's)."""

    THROTTLED = "throttled"  # too many guesses: wait (``throttle.Throttled``)
    BAD_CREDENTIALS = "bad_credentials"  # wrong username or password
    BAD_CODE = "bad_code"  # wrong TOTP or recovery code
    CODE_REUSED = "code_reused"  # the TOTP code accepted moments ago, typed again: refused, not counted
    ALREADY_SET_UP = "already_set_up"  # setting up an app, a code of the app already set up: not counted
    NO_USER = "no_user"  # no pending sign-in to finish with a second factor


def admit(request: HttpRequest, scope: throttle.Scope, account: str, event: EventType, *, user: User | None = None,
          **details: Any) -> throttle.Attempt:
    """Reserve an attempt on ``account``; raises ``throttle.Throttled`` after recording the refusal."""
    source = known_devices.source_for(request, account)
    try:
        return throttle.admit(scope, account, source)
    except throttle.Throttled as refused:
        record(event, outcome=Outcome.DENIED, reason=Refusal.THROTTLED, user=user, request=request, **details,
               **refused.details())
        raise


def fail(
    request: HttpRequest,
    attempt: throttle.Attempt,
    event: EventType,
    reason: Refusal,
    *,
    user: User | None = None,
    **details: Any,
) -> None:
    """The secret was wrong: the attempt stays counted; record it with the delay now due."""
    delay = throttle.failed(attempt)
    record(
        event,
        outcome=Outcome.FAILURE,
        reason=reason,
        user=user,
        request=request,
        basis=str(attempt.source.basis),
        next_attempt_delay=delay,
        **details,
    )


@contextmanager
def judging(attempt: throttle.Attempt) -> Iterator[None]:
    """Around the check of the secret: if it raises (the database or cache is down), the
    attempt was never judged and counts against nobody (``throttle.abandoned``)."""
    try:
        yield
    except BaseException:
        throttle.abandoned(attempt)
        raise


def throttled_message(seconds: int) -> str:
    """What a throttled person reads (login and second factor alike), in the page's language."""
    return ngettext(
        "Too many attempts. Try again in %(seconds)d second.", "Too many attempts. Try again in %(seconds)d seconds.",
        seconds,
    ) % {"seconds": seconds}
