"""What device health announces; shared signals subscribes, device health imports it not.

``compliance_changed(sender, device, previous_status, current_status, reason_admin)``: a
device's CAEP 1.0 §3.5.1 compliance status changed. Sent inside the evaluating transaction.
"""

from __future__ import annotations

from django.dispatch import Signal

#: A device's compliance status changed.
compliance_changed = Signal()
