"""Back-channel logout listens to the one revocation announcement: every session that
``sessions.flows.revocation.revoke_session`` ends (user, browser or RP-initiated logout,
admin, risk, device health, a revoked device, refresh-token or code reuse, a received
shared signal) is sent to its client's ``backchannel_logout_uri`` once the revoking
transaction commits (a rollback sends nothing). What is owed is a ``PendingLogout`` row written
with the revocation, so a broker outage at that moment loses nothing (``idp.resend_pending_logouts``)."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from sessions.flows.revocation import session_revoked

from ..models import PendingLogout
from ..tasks import queue_logout


@receiver(session_revoked, dispatch_uid="idp.backchannel_logout")
def on_session_revoked(sender: Any, session: Any, **kwargs: Any) -> None:
    """Inside the revoking transaction: owe the logout (a row that commits with the
    revocation), then queue it once committed."""
    if session.client.backchannel_logout_uri:
        PendingLogout.objects.get_or_create(session_id=session.pk)
        transaction.on_commit(partial(enqueue, session.pk))


def enqueue(session_pk: int) -> bool:
    """Queue the logout (``idp.tasks.queue_logout``: a broker outage leaves it owed)."""
    return queue_logout(session_pk)
