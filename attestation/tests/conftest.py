"""Fixtures of the attestation tests (factories as fixtures).

Shared: ``oauth_client`` / ``client_factory``, ``allow_test_roots``, ``binding_for``.
Apple: ``ios_app``, ``ios_device``, ``enroll_challenge``. Android fixtures go in their own
section below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from attestation.binding import RequestBinding, grant_hash
from attestation.flows.challenges import issue_challenge
from attestation.models import AppleEnvironment, Platform, RegisteredApp
from simulator.ios import IOSDevice

APPLE_APP_ID = "ABCDE12345.com.example.vigil"


# ---------------------------------------------------------------------- shared
@pytest.fixture
def client_factory(db: Any) -> Callable[..., Any]:
    from clients.models import Client

    counter = {"n": 0}

    def make(client_id: str | None = None, **fields: Any) -> Client:
        counter["n"] += 1
        defaults: dict[str, Any] = {
            "client_id": client_id or f"mobile-app-{counter['n']}",
            "name": "Mobile app",
            "client_type": "public",
            "token_endpoint_auth_method": "none",
            "redirect_uris": ["com.example.vigil:/callback"],
            "allowed_scopes": ["openid", "offline_access"],
            "grant_types": ["authorization_code", "refresh_token"],
        }
        defaults.update(fields)
        return Client.objects.create(**defaults)

    return make


@pytest.fixture
def oauth_client(client_factory: Callable[..., Any]) -> Any:
    return client_factory("mobile-app")


@pytest.fixture
def binding_for() -> Callable[..., RequestBinding]:
    def make(challenge: str, client_id: str, grant: str = "authorization_code", **extra: Any) -> RequestBinding:
        return RequestBinding(
            challenge=challenge,
            client_id=client_id,
            grant=grant,
            grant_hash=grant_hash(extra.pop("secret", "the-authorization-code")),
            **extra,
        )

    return make


# ---------------------------------------------------------------------- Apple
@pytest.fixture
def ios_app_factory(db: Any) -> Callable[..., RegisteredApp]:
    def make(client: Any, **fields: Any) -> RegisteredApp:
        team, bundle = APPLE_APP_ID.split(".", 1)
        defaults: dict[str, Any] = {
            "platform": Platform.IOS,
            "ios_team_id": team,
            "ios_bundle_id": bundle,
            "ios_environment": AppleEnvironment.PRODUCTION,
        }
        defaults.update(fields)
        return RegisteredApp.objects.create(client=client, **defaults)

    return make


@pytest.fixture
def ios_app(oauth_client: Any, ios_app_factory: Callable[..., RegisteredApp]) -> RegisteredApp:
    return ios_app_factory(oauth_client)


@pytest.fixture
def ios_device() -> IOSDevice:
    return IOSDevice(APPLE_APP_ID, environment="production")


@pytest.fixture
def enroll_binding(ios_app: RegisteredApp, binding_for: Callable[..., RequestBinding]) -> RequestBinding:
    issued = issue_challenge(ios_app.client, "enroll")
    return binding_for(issued.value, ios_app.client.client_id)


@pytest.fixture
def refresh_binding_factory(
    ios_app: RegisteredApp, binding_for: Callable[..., RequestBinding]
) -> Callable[[], RequestBinding]:
    def make() -> RequestBinding:
        issued = issue_challenge(ios_app.client, "refresh")
        return binding_for(issued.value, ios_app.client.client_id, grant="refresh_token", secret="refresh-token")

    return make


# ---------------------------------------------------------------------- Android
# (fixtures of attestation/android tests go here)
