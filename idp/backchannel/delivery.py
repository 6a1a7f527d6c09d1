"""Sending a logout token to the client (OpenID Connect Back-Channel Logout 1.0 §2.5, §2.8).

The OP POSTs ``logout_token`` form-encoded to the client's ``backchannel_logout_uri``; the
RP answers 200 (204 is common too) when it logged the session out and 400 when the token
was bad or the logout failed (§2.8). Network errors, 5xx and 408/425/429 are transient:
the task raises :class:`LogoutRetry` and Celery retries with backoff; anything else, or
the last retry, is final and recorded, and the session's ``PendingLogout`` is settled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import outbound
from core.events import EventType, Outcome, record
from sessions.models import DeviceSession

from ..models import PendingLogout
from . import logout_token

RETRYABLE_STATUSES = {408, 425, 429}
#: Seconds for one whole POST (connect, TLS handshake, answer).
TIMEOUT = 5.0
#: Bytes of an answer read (its body is not used: the status is the answer).
MAX_ANSWER = 4096


class LogoutRetry(Exception):
    """A transient failure (network, 5xx, 429): Celery retries with exponential backoff."""


@dataclass(frozen=True)
class PostResult:
    delivered: bool
    retry: bool
    detail: str


def post(uri: str, token: str, *, client_id: str = "") -> PostResult:
    """POST ``logout_token`` once (§2.5) through ``core.outbound``: no redirect followed, the
    whole exchange within ``TIMEOUT``, public addresses only. A refused destination is final:
    retrying would not change the address."""
    try:
        reply = outbound.request("POST", uri, purpose=outbound.Purpose.BACKCHANNEL_LOGOUT, deadline=TIMEOUT,
                                 max_bytes=MAX_ANSWER, data={"logout_token": token},
                                 event_fields={"client_id": client_id})
    except outbound.DestinationRefused as exc:
        return PostResult(False, False, f"destination refused: {exc}")
    except outbound.OutboundError as exc:
        return PostResult(False, True, f"{type(exc).__name__}: {str(exc)[:300]}")
    if 200 <= reply.status < 300:
        return PostResult(True, False, f"HTTP {reply.status}")
    return PostResult(False, reply.status >= 500 or reply.status in RETRYABLE_STATUSES, f"HTTP {reply.status}")


def deliver(session_pk: int, *, final: bool, now: datetime | None = None) -> str:
    """Sign a fresh logout token for the (revoked) session and send it once; raise
    :class:`LogoutRetry` on a transient failure unless this is the ``final`` attempt."""
    session = DeviceSession.objects.select_related("client", "user").filter(pk=session_pk).first()
    if session is None or not session.client.backchannel_logout_uri:
        PendingLogout.objects.filter(session_id=session_pk).delete()
        return "nothing to send"
    uri = session.client.backchannel_logout_uri
    result = post(uri, logout_token.sign(session, now=now or timezone.now()), client_id=session.client.client_id)
    if result.retry and not final:
        raise LogoutRetry(result.detail)
    event = EventType.OAUTH_BACKCHANNEL_LOGOUT_SENT if result.delivered else EventType.OAUTH_BACKCHANNEL_LOGOUT_FAILED
    with transaction.atomic():  # settled: recorded, and no longer owed
        record(event, outcome=Outcome.SUCCESS if result.delivered else Outcome.FAILURE, reason=result.detail[:80],
               user=session.user, client_id=session.client.client_id, session_id=session.sid, uri=uri)
        PendingLogout.objects.filter(session_id=session_pk).delete()
    return "delivered" if result.delivered else f"failed: {result.detail}"


#: A queued logout still pending after this long was lost (its retries end within minutes).
LOST_AFTER = timedelta(minutes=30)
#: A logout not yet queued is left to the revoking request's own ``on_commit`` this long.
QUEUED_SOON = timedelta(minutes=1)


def owed(now: datetime, limit: int = 1000) -> list[int]:
    """Sessions whose logout is still owed and not in flight: never queued (a broker outage
    when the session ended) or queued over ``LOST_AFTER`` ago (the task was lost)."""
    late = Q(enqueued_at__isnull=True, created_at__lt=now - QUEUED_SOON) | Q(enqueued_at__lt=now - LOST_AFTER)
    return list(PendingLogout.objects.filter(late).order_by("pk").values_list("session_id", flat=True)[:limit])
