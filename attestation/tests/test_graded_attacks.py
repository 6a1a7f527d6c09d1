"""Issue 17 §1, an attacker's review of graded trust: a rooted / unlocked phone with a genuine
app that replays, races and crafts requests, and a careless admin.

* a reduction decided for a device follows every token minted for it: a relying service's
  token exchange (RFC 8693) is judged by the rules of the client the device enrolled with,
  not by the exchanging service's, and keeps the reduction (claim, scopes, lifetime);
* a policy change reaches an enrolled device at its next refresh (reduce -> step-up, allow
  -> deny), on the cached rules of this process too;
* choosing an outcome for one device-recognition level never relaxes the default of a level
  the choice does not cover (``--on-integrity-below basic=reduce`` alone);
* the verifier's refusals and the token policy agree on every conflicting rule set;
* inconsistent evidence (a hardware attestation of a software KeyMint, a locked bootloader
  with a basic-only verdict) is graded by its weakest part.

Each refusal asserts the error and that nothing changed.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from attestation.grading import Refusals, refusals_for
from attestation.models import Device, Platform, RegisteredApp
from clients.flows.registration import RegisteredClient, register_client
from core import jwt_tokens
from core.models import SecurityEvent
from device_health import choices
from device_health.evaluate import COMPLIANCE_EVENT
from device_health.models import DeviceHealth, HealthOutcome, HealthPolicy, HealthRule
from idp.oauth.grants.token_exchange import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE
from idp.tests.conftest import MOBILE_CLIENT_ID, browser, form_post, mobile_client, service_client, user  # noqa: F401
from sessions.models import AccessToken, DeviceSession, RefreshToken

from .test_graded_trust import ROOTED, SOFTWARE, G, choose, nothing_stored, phone, refused  # noqa: F401
from .test_health_token_endpoint import FULL, HealthApp, access_claims, android_app, fresh_patch  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]
ORDERS = "https://orders.example.com"
REDUCE, DENY, STEP_UP, ALLOW = HealthOutcome.REDUCE, HealthOutcome.DENY, HealthOutcome.STEP_UP, HealthOutcome.ALLOW


def counts() -> tuple[int, ...]:
    return (Device.objects.count(), DeviceSession.objects.count(), AccessToken.objects.count(),
            RefreshToken.objects.count())


def snapshot() -> tuple[str, str, str | None]:
    health = DeviceHealth.objects.get()
    return health.outcome, health.deciding_rule, health.allowed_scopes


# ------------------------------------------------------------------ token exchange (RFC 8693)


@pytest.fixture
def backend(db: Any) -> RegisteredClient:
    """The app's backend: it serves the app's tokens and exchanges them for the orders API."""
    return register_client(
        name="Backend", public=False, redirect_uris=[], grant_types=["client_credentials", TOKEN_EXCHANGE],
        served_resources=[MOBILE_CLIENT_ID], token_exchange_audiences=[ORDERS], client_id="backend",
    )


def exchange(backend: RegisteredClient, subject: str) -> Any:
    raw = f"{backend.client.client_id}:{backend.secret}".encode()
    return form_post(HttpClient(), reverse("token"), {
        "grant_type": TOKEN_EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": ORDERS}, HTTP_AUTHORIZATION=f"Basic {base64.b64encode(raw).decode()}")


def rooted_and_reduced(phone: HealthApp, mobile_client: Any) -> Any:
    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, REDUCE), (G.BOOTLOADER_UNLOCKED, REDUCE))
    phone.leaf = {**fresh_patch(), **ROOTED}
    response = phone.login()
    assert response.status_code == 200, response.content
    assert access_claims(response)["device_health"] == "reduced"
    return response


@pytest.mark.parametrize("backend_policy", ["none", "allow-everything"])
def test_an_exchanged_token_of_a_reduced_device_stays_reduced(
    phone: HealthApp, mobile_client: Any, backend: RegisteredClient, backend_policy: str
) -> None:
    """The exchanging service's own health policy (none: the strict defaults; or one that
    allows every fact) is not the device's: the device is judged by the rules of the client it
    enrolled with. Before the fix, the defaults refused the exchange *and* stored a `deny`
    snapshot for the device (so the app's own tokens were then refused at userinfo), and a
    lenient service policy minted a full-lifetime token without the reduction and stored
    `allow`."""
    if backend_policy == "allow-everything":
        choose(backend.client, *[(fact, ALLOW) for fact in choices.RULE_NAMES], levels={"strong": ALLOW})
    subject = rooted_and_reduced(phone, mobile_client).json()["access_token"]
    before, events = snapshot(), SecurityEvent.objects.filter(event_type=COMPLIANCE_EVENT).count()
    response = exchange(backend, subject)
    assert response.status_code == 200, response.content
    claims = jwt_tokens.verify(response.json()["access_token"], typ="at+jwt", audience=ORDERS)
    assert claims["device_health"] == "reduced" and claims["act"] == {"sub": "backend"}
    assert claims["scope"] == "openid profile" and claims["exp"] - claims["iat"] <= 120
    assert snapshot() == before == (REDUCE, "rooted-boot", "openid profile")
    assert SecurityEvent.objects.filter(event_type=COMPLIANCE_EVENT).count() == events  # no flip, no flap


def test_an_exchange_for_a_device_whose_client_now_denies_it_is_refused(
    phone: HealthApp, mobile_client: Any, backend: RegisteredClient
) -> None:
    """The app's client tightened reduce -> deny: the still-valid access token cannot be
    laundered through the backend's exchange into a fresh downstream token."""
    subject = rooted_and_reduced(phone, mobile_client).json()["access_token"]
    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, DENY))
    tokens = AccessToken.objects.count()
    response = exchange(backend, subject)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant", response.content
    assert "rule rooted-boot" in response.json()["error_description"]
    assert AccessToken.objects.count() == tokens
    assert snapshot()[0] == DENY
