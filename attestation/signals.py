"""What attestation announces; higher layers (sessions) subscribe, attestation imports none.

``device_revoked(sender, device)``: a device was revoked for good; its token families must
end at once (issue 5 §5). Sent inside the revoking transaction.
"""

from __future__ import annotations

from django.dispatch import Signal

#: A device was suspended: refused until an operator reactivates it.
device_suspended = Signal()
#: A device was revoked for good: the app must enroll a new key.
device_revoked = Signal()
