"""Demo data for `make up`: a user, a public mobile client and a confidential service.
Idempotent; the service secret is rotated and printed on every run (it is never stored)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from attestation.app_settings import app_settings as attestation_settings
from attestation.grading import GradedFact
from clients.flows.registration import register_client, rotate_secret
from clients.models import Client
from core import keys
from core.app_settings import app_settings
from device_health import choices
from device_health.models import HealthOutcome
from simulator.demo_setup import ensure_attested_client, ensure_devicecheck_client, ensure_unattested_client
from simulator.scenarios import rooted_device

DEMO_USER, DEMO_PASSWORD = "demo", "vigil-demo-password"
MOBILE_ID, SERVICE_ID, ATTESTED_ID = "vigil-demo-mobile", "vigil-demo-service", "vigil-demo-attested"
DEVICECHECK_ID = "vigil-demo-devicecheck"


def graded_demo_client() -> str:
    """Issue 17 (graded trust): a client whose device-health policy reduces rooted devices
    (unverified boot, unlocked bootloader) instead of refusing them; see
    ``simulator/scenarios/rooted_device.py``."""
    client = ensure_attested_client(rooted_device.GRADED_CLIENT_ID)
    reduce = HealthOutcome.REDUCE
    choices.choose(client, [choices.FactChoice(GradedFact.BOOT_NOT_VERIFIED, reduce),
                            choices.FactChoice(GradedFact.BOOTLOADER_UNLOCKED, reduce)], actor="bootstrap_demo")
    return f"  graded      client_id={client.client_id} (reduces rooted Android devices instead of refusing them)"


class Command(BaseCommand):
    help = "Create (or refresh) the demo user and clients."

    def _attested_client(self) -> str:
        """With the development test roots on, a client whose apps are the device simulators."""
        if not attestation_settings.ALLOW_TEST_ROOTS:
            return "  (attested demo app: set ATTESTATION_ALLOW_TEST_ROOTS=1 in development to get one)"

        client = ensure_attested_client(ATTESTED_ID)
        graded = graded_demo_client()
        unattested = ensure_unattested_client()
        return (f"  attested    client_id={client.client_id} (simulated iOS/Android apps; try: make demo)\n{graded}\n"
                f"  unattested  client_id={unattested.client_id} (the attested client's apps, also taking devices "
                "that cannot attest)")

    def _devicecheck_client(self) -> str:
        """With the test roots and a DeviceCheck key (``make up`` starts Apple's stand-in), an iOS
        client requiring DeviceCheck (simulator/scenarios/devicecheck_reinstall.py)."""
        if not (attestation_settings.ALLOW_TEST_ROOTS and attestation_settings.DEVICECHECK_SIGNING_KEY):
            return "  (DeviceCheck demo app: needs ATTESTATION_ALLOW_TEST_ROOTS and the stand-in that make up starts)"
        client = ensure_devicecheck_client(DEVICECHECK_ID)
        return f"  devicecheck client_id={client.client_id} (iOS app requiring Apple DeviceCheck, Apple played locally)"

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        user, created = User.objects.get_or_create(username=DEMO_USER, defaults={"email": "demo@example.com"})
        if created:
            user.set_password(DEMO_PASSWORD)
            user.email_verified = True
            user.save()
        if not Client.objects.filter(client_id=MOBILE_ID).exists():
            register_client(
                name="Vigil demo mobile app",
                public=True,
                client_id=MOBILE_ID,
                redirect_uris=["com.example.vigil:/oauthredirect", "http://127.0.0.1/callback"],
                post_logout_redirect_uris=["com.example.vigil:/logout"],
                first_party=True,
            )
        service = Client.objects.filter(client_id=SERVICE_ID).first()
        if service is None:
            secret = register_client(
                name="Vigil demo service",
                public=False,
                client_id=SERVICE_ID,
                redirect_uris=["http://127.0.0.1:8001/callback"],
                scopes=["openid", "profile", "email", "offline_access", "orders.read"],
                served_resources=[MOBILE_ID],  # the app's backend: may introspect its tokens
            ).secret
        else:
            secret = rotate_secret(service)
        attested = self._attested_client()
        devicecheck = self._devicecheck_client()
        keys.ensure_keys()
        issuer = app_settings.ISSUER
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"Vigil is running at {issuer}",
                    f"  discovery   {issuer}/.well-known/openid-configuration",
                    f"  admin       {issuer}/admin/  "
                    "(createsuperuser, then sign in with a second factor: TOTP or a passkey)",
                    f"  demo user   {DEMO_USER} / {DEMO_PASSWORD}",
                    f"  mobile app  client_id={MOBILE_ID} (public, PKCE S256; redirect com.example.vigil:/oauthredirect"
                    " or http://127.0.0.1:<any port>/callback)",
                    f"  service     client_id={SERVICE_ID} client_secret={secret} (confidential, client_secret_basic)",
                    attested,
                    devicecheck,
                    "",
                ]
            )
        )
