"""The usage-report use case: a relying service tells how many bytes a user moved.

``report_usage`` resolves the subject (``sub`` or ``sid``), records the report, judges the
day's volume (``volume.py``) and, when it is anomalous, applies each affected session's
client policy: the reported session when ``sid`` names one, else every active session of
the user.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest

from core.api_errors import ApiErrorCode
from core.events import EventType, Outcome, record
from sessions.models import DeviceSession, SessionStatus

from . import actions, volume
from .actions import policy_for
from .settings import risk_settings
from .signals import Signal


@dataclass
class UsageError(Exception):
    code: ApiErrorCode
    description: str
    status: int = 400


@dataclass
class UsageResult:
    day: str
    duplicate: bool


def check_reporter(client: Any) -> None:
    """Only confidential clients whose risk policy accepts usage reports may report."""
    if client.is_public or not policy_for(client).accepts_usage_reports:
        raise UsageError(ApiErrorCode.ACCESS_DENIED, "This client may not report usage.", 403)


def check_period(start: datetime, end: datetime, now: datetime) -> None:
    if end <= start:
        raise UsageError(ApiErrorCode.INVALID_REQUEST, "period_end must be after period_start.")
    if (end - start).total_seconds() > risk_settings.USAGE_MAX_PERIOD_SECONDS:
        raise UsageError(
            ApiErrorCode.INVALID_REQUEST, f"A report covers at most {risk_settings.USAGE_MAX_PERIOD_SECONDS} seconds."
        )
    if end > now + timedelta(seconds=risk_settings.USAGE_CLOCK_SKEW_SECONDS):
        raise UsageError(ApiErrorCode.INVALID_REQUEST, "period_end is in the future.")


def resolve_subject(sub: str, sid: str) -> tuple[Any, DeviceSession | None]:
    """The user (and session) a report is about; ``sid`` wins and must agree with ``sub``."""
    if sid:
        session = DeviceSession.objects.select_related("user", "client").filter(sid=sid).first()
        if session is None or (sub and session.user.get_user_id() != sub):
            raise UsageError(ApiErrorCode.UNKNOWN_SUBJECT, "No such session.", 404)
        return session.user, session
    subject = _uuid(sub)
    user = get_user_model().objects.filter(subject=subject).first() if subject else None
    if user is None:
        raise UsageError(ApiErrorCode.UNKNOWN_SUBJECT, "No such subject.", 404)
    return user, None


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def report_usage(
    *,
    client: Any,
    sub: str,
    sid: str,
    amount: int,
    start: datetime,
    end: datetime,
    report_id: str,
    request: HttpRequest | None,
    now: datetime,
) -> UsageResult:
    check_reporter(client)
    check_period(start, end, now)
    user, session = resolve_subject(sub, sid)
    with transaction.atomic():
        recorded = volume.record_report(
            client=client, user=user, session=session, amount=amount, start=start, end=end, report_id=report_id, now=now
        )
        if recorded.duplicate:
            return UsageResult(recorded.day.isoformat(), True)
        record(
            EventType.RISK_USAGE_REPORTED,
            outcome=Outcome.INFO,
            user=user,
            client_id=client.client_id,
            session_id=session.sid if session else "",
            request=request,
            bytes=amount,
            day=recorded.day.isoformat(),
            day_bytes=recorded.day_total,
            report=recorded.report.pk,
        )
        if risk_settings.ENABLED:
            signal = volume.anomaly_signal(user.pk, recorded.day, recorded.day_total, now)
            if signal is not None:
                _act(signal, user, session, request, now)
    return UsageResult(recorded.day.isoformat(), False)


def _act(signal: Signal, user: Any, session: DeviceSession | None, request: HttpRequest | None, now: datetime) -> None:
    if session is not None:
        targets = [session]
    else:
        active = DeviceSession.objects.select_related("client", "user").filter(user=user, status=SessionStatus.ACTIVE)
        targets = list(active)
    if not targets:
        actions.execute(
            actions.plan([signal], None), user=user, client=None, session=None, request=request, now=now, source="usage"
        )
    for target in targets:
        actions.execute(
            actions.plan([signal], target.client),
            user=user,
            client=target.client,
            session=target,
            request=request,
            now=now,
            source="usage",
        )
