"""Pytest fixtures shared by every app's tests that drive the device simulators
(registered in the root ``conftest.py`` through ``pytest_plugins``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from attestation.android.play_integrity_api import clear_caches

from . import google_pki
from .devicecheck_standin import DeviceCheckStandIn, new_team_key_pem

DEVICECHECK_TEAM = "ABCDE12345"  # the simulators' App ID team


@pytest.fixture
def allow_test_roots(settings: Any) -> None:
    """Trust the test PKIs (``ATTESTATION_ALLOW_TEST_ROOTS``) for this test only."""
    settings.ATTESTATION_ALLOW_TEST_ROOTS = True


@pytest.fixture
def google(settings: Any) -> Iterator[google_pki.GoogleStandIn]:
    """Google's token URI and ``decodeIntegrityToken`` API, played on 127.0.0.1."""
    clear_caches()
    with google_pki.GoogleStandIn() as stand_in:
        settings.ATTESTATION_PLAY_INTEGRITY_CREDENTIALS = json.dumps(stand_in.credentials())
        settings.ATTESTATION_PLAY_INTEGRITY_API_BASE_URL = stand_in.url
        yield stand_in
    clear_caches()


@pytest.fixture
def devicecheck(settings: Any) -> Iterator[DeviceCheckStandIn]:
    """Apple's DeviceCheck API for the simulators' team, played on 127.0.0.1; the settings
    point both hosts at it and sign with its team key."""
    key = new_team_key_pem()
    with DeviceCheckStandIn(team_id=DEVICECHECK_TEAM, key_pem=key, key_id="DCKEY12345") as stand_in:
        settings.ATTESTATION_DEVICECHECK_BASE_URL = stand_in.url
        settings.ATTESTATION_DEVICECHECK_DEVELOPMENT_BASE_URL = stand_in.url
        settings.ATTESTATION_DEVICECHECK_SIGNING_KEY = key
        settings.ATTESTATION_DEVICECHECK_KEY_ID = "DCKEY12345"
        settings.ATTESTATION_DEVICECHECK_TIMEOUT = 1
        yield stand_in
