"""What attestation announces; higher layers (sessions) subscribe, attestation imports none.

``device_revoked(sender, device)``: a device was revoked for good; its token families must
end at once (issue 5 §5). Sent inside the revoking transaction.
"""

from __future__ import annotations

from django.dispatch import Signal

device_revoked = Signal()
