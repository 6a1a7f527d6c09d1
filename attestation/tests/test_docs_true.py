"""What docs/attestation.md and docs/device-sessions.md promise a client written from them
alone (issue 13: doc drift found by an independent client)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from attestation.flows.challenges import issue_challenge
from clients.flows.registration import register_client

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.django_db
def test_challenge_length_is_the_documented_one() -> None:
    client = register_client(name="App", public=True, redirect_uris=["com.example.app:/cb"]).client
    assert len(client.client_id) == 24  # a generated client_id
    value = issue_challenge(client, "enroll").value
    documented = re.search(r"\*\*(\d+) characters\*\*", (DOCS / "attestation.md").read_text())
    assert documented is not None and int(documented.group(1)) == len(value) == 127
    assert "about 110" not in (DOCS / "attestation.md").read_text()


def test_failure_streak_is_documented_as_the_server_counts_it() -> None:
    text = (DOCS / "device-sessions.md").read_text()
    assert "failures within an hour" not in text
    assert "since the session last got a token" in text


def test_ios_create_client_options_are_documented_as_present() -> None:
    text = (DOCS / "attestation.md").read_text()
    assert "to be added by" not in text and "--ios-app-id TEAMID.bundle.id" in text


@pytest.mark.parametrize("reason", [
    "integrity_token_required", "malformed_key_id",
    "devicecheck_token_required", "devicecheck_token_invalid", "devicecheck_unavailable",
    "revocation_list_unavailable",
])
def test_new_reasons_are_documented(reason: str) -> None:
    from attestation.errors import Reason

    assert reason in {member.value for member in Reason}
    assert f"`{reason}`" in (DOCS / "attestation.md").read_text()


def test_key_id_encoding_is_documented(settings: Any) -> None:
    text = (DOCS / "attestation.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `attestation_key_id`"))
    assert "base64url" in row and "hex" in row and "32 bytes" in row


def test_devicecheck_binding_member_is_documented_as_computed() -> None:
    import base64
    import hashlib

    from attestation.app_settings import app_settings
    from attestation.binding import devicecheck_hash

    text = (DOCS / "attestation.md").read_text()
    assert '`"devicecheck":"<base64url(SHA-256(the token' in text.replace("\n", " ")
    token = "wlkCDA2Hy/CfrMqVAShs1BAR/0sAiuRIUm5jQg0a"
    assert devicecheck_hash(token) == base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(
        b"=").decode()
    for url in (app_settings.DEVICECHECK_BASE_URL, app_settings.DEVICECHECK_DEVELOPMENT_BASE_URL):
        assert f"`{url}`" in text
