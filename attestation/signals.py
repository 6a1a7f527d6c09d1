"""What attestation announces; higher layers (sessions) subscribe, attestation imports none.

Both are sent by ``attestation.flows.registry`` (the one service that suspends and revokes),
inside its transaction, with ``device``, ``reason``, ``actor`` and ``now``:
``device_suspended`` (refused until reactivated) and ``device_revoked`` (for good; its token
families end at once, issue 5 §5, through ``sessions.flows.cascade``).
"""

from __future__ import annotations

from django.dispatch import Signal

#: A device was suspended: refused until an operator reactivates it.
device_suspended = Signal()
#: A device was revoked for good: the app must enroll a new key.
device_revoked = Signal()
