"""Sign-ins answer the risk step-up demands open when they complete (docs/risk.md, "How a
demand is answered").

``risk.stepup`` cannot hear of sign-ins (``accounts`` is above it), so the provider, which
needs the answer to let ``/authorize`` and ``/device`` start a family past a demand, listens
to ``accounts.authstate.signed_in`` (a new sign-in, never a further factor on the same one)
and records that sign-in, by its login id, as the answer of every demand of its user then
open. That, not any clock, is what tells a sign-in after the risk from one before it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.dispatch import receiver
from django.http import HttpRequest

from accounts.authstate import AuthState, signed_in
from core.events import EventType, record
from risk.stepup import answer_open_demands


@receiver(signed_in, dispatch_uid="idp.answer_step_up_demands")
def answer_step_up_demands(sender: Any, request: HttpRequest | None, user: Any, state: AuthState, now: datetime,
                           **kwargs: Any) -> int:
    """The new sign-in ``state`` of ``user`` answers the demands open now; recorded when any."""
    answered = answer_open_demands(user, state.login_id, now=now)
    if answered:
        record(EventType.RISK_STEP_UP_ANSWERED, user=user, request=request, session_id=state.sid, demands=answered)
    return answered
