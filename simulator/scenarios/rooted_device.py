"""Scenario: a rooted Android device (verified boot ``Unverified``, bootloader unlocked)
signs in to two clients (issue 17, graded trust; docs/device-health.md).

* On ``vigil-demo-graded``, whose device-health policy reduces rooted devices, it enrolls
  and gets narrow, short-lived tokens marked ``device_health: "reduced"``, at every refresh.
* On the default attested client ``vigil-demo-attested`` it is refused at enrollment with
  the same error as before graded trust (``invalid_client_attestation``,
  ``boot_state_unverified``).

Server-side set-up: ``bootstrap_demo`` (``idp/management/commands/bootstrap_demo.py``,
``graded_demo_client``). Raises ``FlowError`` when the server answers anything else.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from attestation.testing import google_pki

from ..android import AndroidDevice
from ..mobile_app import FlowError, MobileApp

GRADED_CLIENT_ID = "vigil-demo-graded"
DEFAULT_CLIENT_ID = "vigil-demo-attested"
USERNAME, PASSWORD = "demo", "vigil-demo-password"
ROOTED = {"verified_boot_state": "Unverified", "device_locked": False}
REFRESHES = 2


@dataclass
class RootedAndroid(AndroidDevice):
    """An Android phone with an unlocked bootloader running a modified system: its Key
    Attestation is genuine, and says so (``rootOfTrust``)."""

    def leaf_spec(self, challenge: bytes, **forge: Any) -> google_pki.LeafSpec:
        return super().leaf_spec(challenge, **{**ROOTED, **forge})


def _claims(access_token: str) -> dict[str, Any]:
    """The access token's claims, read as the app's backend would log them (not verified here:
    the server's own tests verify signatures)."""
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _reduced(app: MobileApp, what: str, say: Callable[[str], None]) -> None:
    claims = _claims(app.access_token)
    if claims.get("device_health") != "reduced":
        raise FlowError(f"{what}: expected a reduced token, got scope {claims.get('scope')!r}")
    say(f"  {what}: scope {claims['scope']!r}, {claims['exp'] - claims['iat']} s, device_health=reduced")


def run(issuer: str, say: Callable[[str], None]) -> None:
    """The scenario against a running Vigil at ``issuer`` (``make up`` + ``bootstrap_demo``)."""
    say("\nA rooted Android device (bootloader unlocked, verified boot off)...")
    graded = MobileApp(issuer, GRADED_CLIENT_ID, RootedAndroid())
    response = graded.login(USERNAME, PASSWORD)
    if response.status_code != 200:
        raise FlowError(f"{GRADED_CLIENT_ID} refused the rooted device: {response.text}")
    _reduced(graded, f"{GRADED_CLIENT_ID} (reduces rooted devices) enrolls it", say)
    for n in range(1, REFRESHES + 1):
        response = graded.refresh()
        if response.status_code != 200:
            raise FlowError(f"refresh {n} refused: {response.text}")
        _reduced(graded, f"refresh {n}", say)
    say(f"  userinfo with the reduced token: HTTP {graded.userinfo().status_code}")
    strict = MobileApp(issuer, DEFAULT_CLIENT_ID, RootedAndroid())
    response = strict.login(USERNAME, PASSWORD)
    body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") else {}
    if response.status_code != 400 or body.get("error") != "invalid_client_attestation":
        raise FlowError(f"{DEFAULT_CLIENT_ID} did not refuse the rooted device: {response.text}")
    say(f"  {DEFAULT_CLIENT_ID} (default policy) refuses it: {body['error']} ({body.get('error_description')})")
