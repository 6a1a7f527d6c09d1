"""`device_demo` (`make demo`): the device simulators against a running Vigil, in plain words.

An iOS and an Android device log in as the demo user, refresh a few times with fresh
attestations and DPoP proofs, then a refresh token copied to a third device is refused.
Then the scenarios of ``simulator.scenarios`` (all, or those named with ``--scenario``): a
rooted device with reduced access, a device that cannot attest using the fallback, and a
phone flagged at Apple (DeviceCheck) refused after a reinstall. The DeviceCheck scenario needs
the DeviceCheck demo client that ``bootstrap_demo`` makes when Apple's stand-in runs (``make
up`` starts it); without that client it is skipped with the reason.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clients.models import Client
from simulator.demo_setup import devices
from simulator.mobile_app import FlowError, MobileApp
from simulator.scenarios import RUNS, Scenario, devicecheck_reinstall


class Command(BaseCommand):
    help = "Run the iOS and Android device simulators against a running Vigil (make up)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--issuer", default="http://localhost:8000")
        parser.add_argument("--client-id", default="vigil-demo-attested")
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="vigil-demo-password")
        parser.add_argument("--refreshes", type=int, default=3)
        parser.add_argument(
            "--scenario", action="append", choices=[s.value for s in Scenario], default=None,
            help="run only these scenarios after the basic flow (repeatable; default: all)",
        )
        parser.add_argument("--no-basic", action="store_true", help="skip the basic iOS/Android flow")

    def say(self, text: str) -> None:
        self.stdout.write(text)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._run(options)
        except (FlowError, OSError) as exc:
            raise CommandError(f"{exc} — is `make up` running at {options['issuer']}?") from exc

    def _run(self, options: dict[str, Any]) -> None:
        issuer = options["issuer"].rstrip("/")
        if not options["no_basic"]:
            self._basic(issuer, options)
        for scenario in [Scenario(name) for name in options["scenario"] or [s.value for s in Scenario]]:
            self._scenario(scenario, issuer)

    def _scenario(self, scenario: Scenario, issuer: str) -> None:
        if scenario == Scenario.DEVICECHECK and not Client.objects.filter(
            client_id=devicecheck_reinstall.CLIENT_ID
        ).exists():
            self.say(f"\n(scenario {scenario}: skipped, no {devicecheck_reinstall.CLIENT_ID} client: "
                     "bootstrap_demo makes it when Apple's DeviceCheck stand-in runs, as make up starts it)")
            return
        RUNS[scenario](issuer, self.say)

    def _basic(self, issuer: str, options: dict[str, Any]) -> None:
        client_id = options["client_id"]
        phones = devices()
        apps = [MobileApp(issuer, client_id, phones["ios"]), MobileApp(issuer, client_id, phones["android"])]
        for app in apps:
            self.say(f"\n{app.platform} device: signing in as {options['username']} through the system browser...")
            response = app.login(options["username"], options["password"])
            if response.status_code != 200:
                raise FlowError(f"{app.platform} login refused: {response.text}")
            self.say(f"  attested the device and got {response.json()['token_type']}-bound tokens")
            for n in range(1, options["refreshes"] + 1):
                response = app.refresh()
                verdict = "accepted" if response.status_code == 200 else f"REFUSED ({response.text})"
                self.say(f"  refresh {n} with a fresh attestation and DPoP proof: {verdict}")
            self.say(f"  userinfo with the DPoP-bound access token: HTTP {app.userinfo().status_code}")
        victim = apps[0]
        thief = MobileApp(issuer, client_id, devices()["ios"], dpop_key=victim.dpop_key)
        thief.refresh_token = victim.refresh_token
        self.say("\nA third device copies the iOS device's refresh token (and even its DPoP key)...")
        response = thief.refresh()
        outcome = response.json().get("error", "accepted?!") if response.status_code != 200 else "ACCEPTED (bug!)"
        self.say(f"  its refresh is refused: {outcome} — it cannot attest as the enrolled device")
        response = victim.refresh()
        verdict = "accepted" if response.status_code == 200 else "refused"
        self.say(f"  the real iOS device keeps working: refresh {verdict}")
