"""Risk signals: what each detector reports, and the detectors about devices.

A ``Signal`` names one ``RiskSignal`` and carries its facts (they become the
``details`` of the ``risk.signal`` security event). Location signals live in
``travel.py``, the data-volume signal in ``volume.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from attestation.errors import NOT_THE_DEVICES_FAILURE
from core.events import EventType
from core.models import SecurityEvent
from sessions.models import DeviceSession

from .models import DeviceRiskState, RiskSignal
from .settings import risk_settings


@dataclass(frozen=True)
class Signal:
    kind: str
    details: dict[str, Any] = field(default_factory=dict)


#: Play Integrity ``deviceRecognitionVerdict`` labels and the level each one proves.
INTEGRITY_LABELS = {
    "MEETS_STRONG_INTEGRITY": "strong", "MEETS_DEVICE_INTEGRITY": "device", "MEETS_BASIC_INTEGRITY": "basic",
}
INTEGRITY_RANK = {"none": 0, "basic": 1, "device": 2, "strong": 3}

#: Events that end a streak of failed attestations on a session: a token was issued.
STREAK_BREAKERS = (EventType.OAUTH_TOKEN_ISSUED, EventType.OAUTH_TOKEN_REFRESHED, EventType.OAUTH_REFRESH_RETRIED)


def new_device_signal(session: Any) -> Signal | None:
    """The first session of this user on this attested device (checked when a family starts)."""
    if session is None or session.device_id is None:
        return None

    earlier = DeviceSession.objects.filter(user_id=session.user_id, device_id=session.device_id).exclude(pk=session.pk)
    if earlier.exists():
        return None
    device = session.device
    return Signal(RiskSignal.NEW_DEVICE, {
        "device": device.pk, "platform": device.platform, "key_id": device.key_id[:24],
        "security_level": device.security_level,
    })


def attestation_streak_signal(session: Any, attestation_failures: int | None = None) -> Signal | None:
    """``SESSIONS_RISK_ATTESTATION_STREAK`` refused attestations on this session since it last
    got a token (and since this streak was last signalled). One indexed query, newest first,
    skipped when the request knows from the shared failure counter that its good proof
    followed none (``attestation_failures == 0``: the common refresh)."""
    if session is None or attestation_failures == 0:
        return None
    threshold = risk_settings.ATTESTATION_STREAK
    kinds = [*STREAK_BREAKERS, EventType.ATTESTATION_TOKEN_REFUSED, EventType.RISK_SIGNAL]
    recent = (
        SecurityEvent.objects.filter(session_id=session.sid, event_type__in=kinds)
        # A retry's stale challenge or an outage (Google's, Apple's) is no failure of the device,
        # and must not fill the window either.
        .exclude(event_type=EventType.ATTESTATION_TOKEN_REFUSED, reason__in=list(NOT_THE_DEVICES_FAILURE))
        .order_by("-pk").values_list("event_type", "reason")[: threshold * 4 + 20]
    )
    reasons: list[str] = []
    for event_type, reason in recent:
        if event_type in STREAK_BREAKERS or (
            event_type == EventType.RISK_SIGNAL and reason == RiskSignal.ATTESTATION_FAILURES
        ):
            break
        if event_type == EventType.ATTESTATION_TOKEN_REFUSED:
            reasons.append(reason)
    if len(reasons) < threshold:
        return None
    reasons.reverse()
    return Signal(
        RiskSignal.ATTESTATION_FAILURES, {"failures": len(reasons), "reasons": reasons[-10:], "threshold": threshold}
    )


def integrity_level(verdict: dict[str, Any] | None) -> str | None:
    """The strongest level of a stored Play Integrity verdict, None when the device has none."""
    integrity = (verdict or {}).get("play_integrity")
    if not isinstance(integrity, dict) or "device_recognition_verdict" not in integrity:
        return None
    labels = integrity.get("device_recognition_verdict") or []
    levels = [INTEGRITY_LABELS[v] for v in labels if isinstance(v, str) and v in INTEGRITY_LABELS]
    return max(levels, key=INTEGRITY_RANK.__getitem__, default="none")


def integrity_check(device: Any) -> tuple[Signal | None, str | None, str | None]:
    """``(signal, previous, current)``: the device's current verdict against the level seen at
    its previous attestation (``remember_integrity`` stores each new level)."""
    level = integrity_level(getattr(device, "verdict", None))
    if level is None:
        return None, None, None
    previous = _remembered_level(device)
    if not previous or INTEGRITY_RANK[level] >= INTEGRITY_RANK.get(previous, 0):
        return None, previous, level
    facts = {"device": device.pk, "previous": previous, "current": level}
    return Signal(RiskSignal.INTEGRITY_DOWNGRADE, facts), previous, level


def _remembered_level(device: Any) -> str | None:
    """The level stored for the device; no query when the refresh-token lookup brought it along."""
    related = type(device).risk_state.related
    if related.is_cached(device):
        state = related.get_cached_value(device)
        return state.integrity_level if state is not None else None
    return DeviceRiskState.objects.filter(device=device).values_list("integrity_level", flat=True).first()


def remember_integrity(device: Any, level: str, now: datetime) -> None:
    """Store the level of the device's current verdict for the next comparison."""
    DeviceRiskState.objects.update_or_create(device=device, defaults={"integrity_level": level, "updated_at": now})
