"""Fixtures for the accounts tests: users, factors, codes computed from real secrets."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp as oath_totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.flows import recovery
from accounts.models import Passkey, SealedTOTPDevice
from accounts.totp_secret import open_

PASSWORD = "correct horse battery staple 42"
VECTORS = Path(__file__).parent / "vectors"
#: A fixed instant in the middle of a 30-second TOTP step.
T0 = datetime(2026, 11, 28, 9, 0, 10, tzinfo=UTC)


def load_vector(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text())


@pytest.fixture
def frozen() -> Any:
    """Time frozen at T0 (``frozen.shift(seconds)`` moves it)."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def make_user(django_user_model: Any) -> Callable[..., Any]:
    def make(username: str = "alice", **extra: Any) -> Any:
        return django_user_model.objects.create_user(username=username, password=PASSWORD, **extra)

    return make


@pytest.fixture
def user(make_user: Callable[..., Any]) -> Any:
    return make_user()


def confirmed_totp(user: Any) -> SealedTOTPDevice:
    device = SealedTOTPDevice.create_sealed(user, "app")
    device.confirmed = True
    device.save()
    return device


@pytest.fixture
def totp_device(user: Any) -> SealedTOTPDevice:
    return confirmed_totp(user)


def code_for(device: TOTPDevice, offset_steps: int = 0) -> str:
    """The RFC 6238 code an authenticator app shows now (from the stored secret)."""
    value = oath_totp(open_(device.key), step=device.step, t0=device.t0, digits=device.digits, drift=offset_steps)
    return str(value).zfill(device.digits)


@pytest.fixture
def recovery_codes(user: Any, totp_device: TOTPDevice) -> list[str]:
    return recovery.generate(user)


@pytest.fixture
def make_passkey() -> Callable[..., Passkey]:
    counter = {"n": 0}

    def make(user: Any, **extra: Any) -> Passkey:
        counter["n"] += 1
        values: dict[str, Any] = {
            "name": f"Key {counter['n']}",
            "credential_id": f"cred-{counter['n']}",
            "public_key": b"\x00",
            "user_handle": user.ensure_webauthn_user_handle(),
        }
        values.update(extra)
        return Passkey.objects.create(user=user, **values)

    return make


def login_password(client: Client, username: str = "alice", password: str = PASSWORD, **params: str) -> Any:
    data = {"username": username, "password": password, **params}
    return client.post(reverse("accounts:login"), data)


def session_auth(client: Client) -> dict[str, Any] | None:
    return client.session.get("vigil_auth")


def signed_in(client: Client) -> dict[str, Any]:
    """The session's authentication state; fails the test when nobody is signed in."""
    auth = session_auth(client)
    assert auth is not None, "nobody is signed in"
    return auth
