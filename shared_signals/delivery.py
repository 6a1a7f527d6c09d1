"""Push delivery of SETs (RFC 8935 §2): POST ``application/secevent+jwt``, success is
202 Accepted; a 400 carries ``{"err", "description"}`` (§2.3) and is final.

``attempt`` runs under a row lock (``select_for_update(skip_locked=True)``) so two
workers never push the same delivery at once, and never pushes one already delivered:
at least once, idempotent by ``jti`` (the claims, so the ``jti``, are fixed at emission).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import keys, outbound
from core.events import EventType, Outcome, record

from . import set_tokens
from .app_settings import app_settings
from .models import DeliveryStatus, ReceivedSet, SetDelivery

RETRYABLE_STATUSES = {408, 425, 429}
MAX_ERROR_BODY = 4096
#: The event a delivery that stopped being pending records.
_SETTLED: dict[str, EventType] = {
    DeliveryStatus.DELIVERED: EventType.SSF_SET_DELIVERED,
    DeliveryStatus.REJECTED: EventType.SSF_SET_REJECTED,
    DeliveryStatus.FAILED: EventType.SSF_SET_FAILED,
}


class DeliveryRetry(Exception):
    """A transient failure (network, 5xx, 429): Celery retries with exponential backoff."""


@dataclass(frozen=True)
class PushResult:
    delivered: bool
    retry: bool
    detail: str


def _error_detail(reply: outbound.Reply) -> str:
    """``err: description`` from an RFC 8935 §2.3 error body, else the status line."""
    try:
        body = json.loads(reply.body or b"{}")
    except (ValueError, UnicodeError, RecursionError):  # RecursionError: JSON nested too deep
        body = {}
    if isinstance(body, dict) and isinstance(body.get("err"), str):
        return f"{reply.status} {body['err']}: {str(body.get('description', ''))[:300]}"
    return f"HTTP {reply.status}"


def push(delivery: SetDelivery, now: datetime | None = None) -> PushResult:
    """Sign the SET afresh and POST it once to the receiver's endpoint, through
    ``core.outbound`` (public addresses only, ``IDP_SSF_HTTP_TIMEOUT`` for the whole
    exchange). A refused destination is final: retrying would not change the address."""
    token = set_tokens.sign(delivery.claims, now=now)
    headers = {"Content-Type": "application/secevent+jwt", "Accept": "application/json"}
    authorization = delivery.receiver.authorization_header()
    if authorization:
        headers["Authorization"] = authorization
    try:
        reply = outbound.request("POST", delivery.receiver.endpoint_url, purpose=outbound.Purpose.SSF_PUSH,
                                 deadline=app_settings.HTTP_TIMEOUT, max_bytes=MAX_ERROR_BODY, headers=headers,
                                 data=token.encode("ascii"), event_fields={"receiver": delivery.receiver.name})
    except outbound.DestinationRefused as exc:
        return PushResult(False, False, f"destination refused: {exc}")
    except outbound.OutboundError as exc:
        return PushResult(False, True, f"{type(exc).__name__}: {str(exc)[:300]}")
    if 200 <= reply.status < 300:
        return PushResult(True, False, f"HTTP {reply.status}")
    retry = reply.status >= 500 or reply.status in RETRYABLE_STATUSES
    return PushResult(False, retry, _error_detail(reply))


def attempt(delivery_pk: int, *, final: bool, now: datetime | None = None) -> str:
    """Deliver one SET if nobody else is and it is not done; raise ``DeliveryRetry`` on a
    transient failure unless ``final`` (then it is marked failed for the sweep)."""
    # A first signing key is created (and committed) before the lock: the receiver may
    # fetch our JWKS while we wait for its answer.
    keys.active_key(app_settings.SIGNING_ALG, now)
    with transaction.atomic():
        delivery = (
            SetDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("receiver").filter(pk=delivery_pk).first()
        )
        if delivery is None:
            return "locked_or_gone"
        if delivery.status in {DeliveryStatus.DELIVERED, DeliveryStatus.REJECTED}:
            return str(delivery.status)
        if not delivery.receiver.enabled:
            return "receiver_disabled"
        result = push(delivery, now)
        _save_result(delivery, result, final, now or timezone.now())
    if result.retry and not final:
        raise DeliveryRetry(result.detail)
    return str(delivery.status)


def _save_result(delivery: SetDelivery, result: PushResult, final: bool, moment: datetime) -> None:
    delivery.attempts += 1
    delivery.last_attempt_at = moment
    delivery.last_error = "" if result.delivered else result.detail[:500]
    if result.delivered:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, moment
    elif not result.retry:
        delivery.status = DeliveryStatus.REJECTED
    elif final:
        delivery.status = DeliveryStatus.FAILED
    delivery.save(update_fields=["attempts", "last_attempt_at", "last_error", "status", "delivered_at"])
    if delivery.status != DeliveryStatus.PENDING:
        record(
            _SETTLED[delivery.status],
            outcome=Outcome.SUCCESS if result.delivered else Outcome.FAILURE,
            reason="" if result.delivered else result.detail[:80],
            jti=delivery.jti,
            set_event=delivery.event_type,
            receiver=delivery.receiver.name,
            audience=delivery.receiver.audience,
            attempts=delivery.attempts,
        )


def due_for_sweep(now: datetime | None = None, limit: int = 500) -> list[int]:
    """Deliveries the retry sweep should send again: pending ones nobody touched for
    ``IDP_SSF_STUCK_AFTER_SECONDS`` (a lost task, a broker outage) and failed ones younger
    than ``IDP_SSF_GIVE_UP_AFTER_SECONDS``."""
    moment = now or timezone.now()
    stale = moment - timedelta(seconds=app_settings.STUCK_AFTER_SECONDS)
    give_up = moment - timedelta(seconds=app_settings.GIVE_UP_AFTER_SECONDS)
    untouched = Q(last_attempt_at__isnull=True, created_at__lt=stale) | Q(last_attempt_at__lt=stale)
    pending = Q(status=DeliveryStatus.PENDING) & untouched
    failed = Q(status=DeliveryStatus.FAILED, created_at__gte=give_up, last_attempt_at__lt=stale)
    query = SetDelivery.objects.filter(pending | failed, receiver__enabled=True).order_by("created_at")
    return list(query.values_list("pk", flat=True)[:limit])


def purge(now: datetime | None = None, chunk: int = 1000) -> dict[str, int]:
    """Delete what no longer protects anything: received SETs older than the acceptance
    window (their ``iat`` is refused anyway, so the replay record is moot) and finished
    deliveries older than ``IDP_SSF_KEEP_DELIVERIES_DAYS``. Works in chunks."""
    moment = now or timezone.now()
    window = timedelta(seconds=app_settings.MAX_SET_AGE_SECONDS + app_settings.CLOCK_SKEW_SECONDS + 60)
    finished = SetDelivery.objects.filter(
        status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.REJECTED],
        created_at__lt=moment - timedelta(days=app_settings.KEEP_DELIVERIES_DAYS),
    )
    return {
        "received_sets": _delete_in_chunks(ReceivedSet.objects.filter(issued_at__lt=moment - window), chunk),
        "deliveries": _delete_in_chunks(finished, chunk),
    }


def _delete_in_chunks(query: Any, chunk: int) -> int:
    total = 0
    while True:
        pks = list(query.order_by().values_list("pk", flat=True)[:chunk])  # any chunk will do: no sort
        if not pks:
            return total
        total += query.model.objects.filter(pk__in=pks).delete()[0]
