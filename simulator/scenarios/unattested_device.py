"""A device that cannot attest signs in through the fallback (docs/unattested-devices.md),
gets reduced tokens marked ``device_attested: false``, refreshes with its DPoP key alone,
and, once it can attest (an app update, App Attest back), upgrades its session in place.

Server side: ``simulator.demo_setup.ensure_unattested_client`` (``bootstrap_demo``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from ..demo_setup import UNATTESTED_CLIENT_ID, devices
from ..mobile_app import FlowError, MobileApp


def _claims(access_token: str) -> dict[str, Any]:
    """The access token's claims, unverified (the app only shows them)."""
    payload = access_token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def _expect(response: Any, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise FlowError(f"{what} refused: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


def run(issuer: str, say: Callable[[str], None]) -> None:
    """The scenario against the demo set-up (``bootstrap_demo``): the demo user, on iOS."""
    play(issuer, say)


def play(issuer: str, say: Callable[[str], None], *, client_id: str = UNATTESTED_CLIENT_ID, username: str = "demo",
         password: str = "vigil-demo-password", platform: str = "ios", refreshes: int = 2) -> MobileApp:
    """Enroll unattested, refresh, upgrade by attesting; returns the app (for tests)."""
    app = MobileApp(issuer.rstrip("/"), client_id, devices()[platform], attested=False)
    say(f"\n{app.platform} device that cannot attest (App Attest / Key Attestation unavailable): signing in...")
    body = _expect(app.login(username, password), "unattested login")
    claims = _claims(body["access_token"])
    say(f"  enrolled with its DPoP key only: device_attested={body.get('device_attested')}, "
        f"scope '{claims['scope']}', token for {body['expires_in']} s ({claims.get('device_health', 'full')} access)")
    for n in range(1, refreshes + 1):
        body = _expect(app.refresh(), f"unattested refresh {n}")
        say(f"  refresh {n} with a DPoP proof alone: accepted; attestation offered again: "
            f"{'yes' if app.next_challenge else 'no'}")
    say(f"  userinfo with the reduced token: HTTP {app.userinfo().status_code}")
    say("  the device can attest now (an app update): attesting a new key at the next refresh...")
    body = _expect(app.upgrade(), "upgrade")
    claims = _claims(body["access_token"])
    say(f"  session upgraded to the attested device: scope '{claims['scope']}', "
        f"device_attested {'absent (attested)' if 'device_attested' not in claims else claims['device_attested']}")
    _expect(app.refresh(), "attested refresh after the upgrade")
    say("  next refresh with an assertion of the new key: accepted")
    return app
