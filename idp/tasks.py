"""Periodic provider jobs: key rotation and clean-up of expired protocol state.

Tasks take no ORM objects, are idempotent and let errors raise so Celery retries them.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from core import keys
from core.app_settings import app_settings
from core.events import EventType, record
from idp.backchannel import delivery as backchannel_delivery
from idp.models import DeviceAuthorization, PendingLogout
from sessions.models import AccessToken, AuthorizationCode, RefreshToken

logger = logging.getLogger(__name__)


@shared_task(name="idp.rotate_keys_if_due")
def rotate_keys_if_due() -> list[str]:
    """Apply due key transitions and publish a successor for keys older than KEY_ROTATION_DAYS."""
    changes = keys.advance()
    for alg in app_settings.SUPPORTED_SIGNING_ALGS:
        if keys.rotation_due(alg):
            key = keys.rotate(alg)
            changes.append(f"published {alg} {key.kid}")
            record(EventType.KEYS_ROTATED, alg=alg, kid=key.kid, scheduled=True)
    return changes


@shared_task(
    name="idp.send_backchannel_logout",
    bind=True,
    autoretry_for=(backchannel_delivery.LogoutRetry,),
    retry_backoff=2,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=6,
    acks_late=True,
)
def send_backchannel_logout(self: Any, session_pk: int) -> str:
    """OpenID Connect Back-Channel Logout 1.0 §2.5: send the revoked session's logout token
    to its client; transient failures retry with exponential backoff (``backchannel.delivery``)."""
    return backchannel_delivery.deliver(session_pk, final=self.request.retries >= self.max_retries)


def queue_logout(session_pk: int) -> bool:
    """Queue the session's back-channel logout and note when. A broker outage is logged and
    leaves the logout owed (``PendingLogout``): ``resend_pending_logouts`` queues it later."""
    try:
        send_backchannel_logout.delay(session_pk)
    except (KombuOperationalError, OSError) as exc:
        logger.warning("back-channel logout of session %s not queued, queued again later (%s)", session_pk, exc)
        return False
    PendingLogout.objects.filter(session_id=session_pk).update(enqueued_at=timezone.now())
    return True


@shared_task(name="idp.resend_pending_logouts")
def resend_pending_logouts() -> int:
    """Queue again the back-channel logouts still owed: never queued (a broker outage when
    their session ended) or queued long ago and lost. Returns how many were queued."""
    return sum(queue_logout(session_pk) for session_pk in backchannel_delivery.owed(timezone.now()))


@shared_task(name="idp.purge_expired_codes_and_tokens")
def purge_expired(keep_days: int = 1) -> dict[str, int]:
    """Delete codes, access-token records, refresh tokens and device authorizations (RFC 8628)
    that expired over ``keep_days`` ago. A code or device authorization whose family lives is
    kept: presented again, it is reuse and revokes that family (RFC 6749 §4.1.2)."""
    cutoff = timezone.now() - timedelta(days=keep_days)
    return {
        "codes": AuthorizationCode.objects.filter(expires_at__lt=cutoff, device_session__isnull=True).delete()[0],
        "access_tokens": AccessToken.objects.filter(expires_at__lt=cutoff).delete()[0],
        "refresh_tokens": RefreshToken.objects.filter(expires_at__lt=cutoff).delete()[0],
        "device_authorizations": DeviceAuthorization.objects.filter(
            expires_at__lt=cutoff, session__isnull=True).delete()[0],
    }
