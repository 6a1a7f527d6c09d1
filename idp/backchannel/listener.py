"""Back-channel logout listens to the one revocation announcement: every session that
``sessions.flows.revocation.revoke_session`` ends (user, browser or RP-initiated logout,
admin, risk, device health, a revoked device, refresh-token or code reuse, a received
shared signal) is sent to its client's ``backchannel_logout_uri`` once the revoking
transaction commits (a rollback sends nothing)."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.db import transaction
from django.dispatch import receiver
from kombu.exceptions import OperationalError

from sessions.flows.revocation import session_revoked

from ..tasks import send_backchannel_logout

logger = logging.getLogger(__name__)


@receiver(session_revoked, dispatch_uid="idp.backchannel_logout")
def on_session_revoked(sender: Any, session: Any, **kwargs: Any) -> None:
    if session.client.backchannel_logout_uri:
        transaction.on_commit(partial(enqueue, session.pk))


def enqueue(session_pk: int) -> None:
    """Hand the logout to Celery; a broker outage is logged (the session is revoked anyway)."""
    try:
        send_backchannel_logout.delay(session_pk)
    except (OperationalError, OSError) as exc:
        logger.warning("back-channel logout of session %s not enqueued (%s)", session_pk, exc)
