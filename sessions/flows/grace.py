"""The retry window of a rotated refresh token (RFC 9700 §4.14.2, FAPI 2.0 §5.3.2.1 (10)).

A refresh token presented again shortly after its rotation gets the same successor back (a
response lost on a mobile network), not a reuse revocation: how long that holds for a family.
The refresh lifecycle (``refresh.judge``) and the code exchange's retry (``code_exchange.judge_again``)
both read it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.app_settings import app_settings as idp_settings

from ..app_settings import app_settings as sessions_settings
from ..models import DeviceSession, RefreshToken

#: The shortest retry window of a FAPI 2.0 client's refresh tokens (``grace_seconds``).
FAPI2_RETRY_GRACE_SECONDS = 30


def grace_seconds(session: DeviceSession) -> int:
    """How long after its rotation a refresh token may be presented again for the same
    successor. Device-bound families get a longer window by default: every refresh carries
    fresh attestation from the enrolled device, so re-presenting the predecessor after a lost
    response proves possession of the device, not just of a leaked token."""
    grace = idp_settings.REFRESH_TOKEN_GRACE_SECONDS
    # An unattested device proves only its DPoP key: no longer window (docs/unattested-devices.md).
    device = session.device if session.device_id is not None else None
    if device is not None and device.attested:
        grace = max(grace, sessions_settings.DEVICE_BOUND_REFRESH_GRACE_SECONDS)
    if session.client_id is not None and session.client.is_fapi2:
        # FAPI 2.0 Security Profile §5.3.2.1 (10): rotation only where retrying with the previous
        # refresh token succeeds: a FAPI client always has a retry window, whatever the setting.
        grace = max(grace, FAPI2_RETRY_GRACE_SECONDS)
    return grace


def within_grace(token: RefreshToken, now: datetime) -> bool:
    """Whether the rotated ``token`` was rotated inside the grace window (time alone)."""
    grace = grace_seconds(token.session)
    if grace <= 0 or token.rotated_at is None:
        return False
    return now - token.rotated_at <= timedelta(seconds=grace)
