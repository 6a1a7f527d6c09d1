"""The announcement of device health (``attestation.health.evaluate``): a device's
compliance status (CAEP 1.0 §3.5.1: ``compliant`` or ``not-compliant``) changed. Sent once
per change, in the transaction that stores the new snapshot; the Shared Signals transmitter
(``idp.ssf.signals``) turns it into a device-compliance-change SET.

Arguments: ``device``, ``previous_status``, ``current_status``, ``reason`` (the deciding
rule, for the receivers' administrators), ``details`` (what the security event recorded).
"""

from __future__ import annotations

from django.dispatch import Signal

#: A device's compliance status changed.
compliance_changed = Signal()
