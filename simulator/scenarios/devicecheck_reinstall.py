"""A phone revoked for abuse stays refused after the app is reinstalled (Apple DeviceCheck).

1. An iPhone signs in to the DeviceCheck demo client: it attests a new App Attest key and
   sends a DeviceCheck token; Apple says this phone's bits were never set.
2. The operator revokes the device for abuse and flags it at Apple ("revoke and flag on
   Apple"): a Celery task sets bit 0 through ``update_two_bits``.
3. The user deletes the app and installs it again: a new App Attest key, a new token, the
   same phone. Its new enrollment is refused by the ``devicecheck-flagged`` health rule.

Needs the server's database (the operator's step runs here, as the admin action would) and
Apple: in development the stand-in ``attestation/testing/devicecheck_standin.py`` (``make up``
starts it), which maps every token of the simulated phone to the same device.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from attestation.flows.registry import revoke_and_flag_device
from attestation.models import Device

from ..demo_setup import IOS_APP_ID
from ..ios import IOSDevice
from ..mobile_app import FlowError, MobileApp

CLIENT_ID = "vigil-demo-devicecheck"
USERNAME, PASSWORD = "demo", "vigil-demo-password"
FLAG_WAIT_SECONDS = 30.0


def _wait_for_apple(device: Device, say: Callable[[str], None]) -> None:
    deadline = time.monotonic() + FLAG_WAIT_SECONDS
    while time.monotonic() < deadline:
        device.refresh_from_db(fields=["devicecheck_flagged_at"])
        if device.devicecheck_flagged_at is not None:
            say("  Apple confirmed: bit 0 of this phone is set")
            return
        time.sleep(0.5)
    raise FlowError("the DeviceCheck flag was not confirmed in time: is the Celery worker running?")


def run(issuer: str, say: Callable[[str], None]) -> None:
    phone = IOSDevice(IOS_APP_ID, environment="production", devicecheck=True)
    app = MobileApp(issuer, CLIENT_ID, phone)
    say("\nDeviceCheck: an iPhone signs in, attests its App Attest key and sends a DeviceCheck token...")
    response = app.login(USERNAME, PASSWORD)
    if response.status_code != 200:
        raise FlowError(f"DeviceCheck enrollment refused: {response.text[:300]}")
    say("  enrolled; Apple has never set a bit for this phone")
    device = Device.objects.select_related("app__client").get(app__client__client_id=CLIENT_ID,
                                                             key_id=phone.key_id_b64)
    say("The operator revokes the device for abuse and flags it on Apple...")
    revoke_and_flag_device(device, reason="demo: revoked for abuse")
    _wait_for_apple(device, say)
    refused = app.refresh()
    say(f"  the revoked app's refresh: {refused.json().get('error', 'accepted?!')}")
    say("The user deletes the app and installs it again (a new App Attest key on the same phone)...")
    again = MobileApp(issuer, CLIENT_ID, phone.reinstall())
    response = again.login(USERNAME, PASSWORD)
    if response.status_code == 200:
        raise FlowError("the reinstalled app on a flagged phone was accepted")
    body = response.json()
    say(f"  its new enrollment is refused: {body.get('error')} ({body.get('error_description', '')})")
