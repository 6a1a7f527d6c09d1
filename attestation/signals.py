"""The announcements of the attestation registry (``attestation.flows.registry``), the one
service that suspends and revokes devices. Each is sent once per change, after the
security event is recorded; listeners (``sessions.flows.cascade`` ends a revoked device's
token families) subscribe here, never to the audit table. Receivers connect from their app's ``AppConfig.ready()``.

Arguments: ``device`` (``attestation.models.Device``), ``reason`` (free text from the
operator or the policy), ``actor`` (the user who decided, or None), ``now``.
"""

from __future__ import annotations

from django.dispatch import Signal

#: A device was suspended: refused until an operator reactivates it.
device_suspended = Signal()
#: A device was revoked for good: the app must enroll a new key.
device_revoked = Signal()
