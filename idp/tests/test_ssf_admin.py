"""Admin of Shared Signals: pages load, the receiver's Authorization header is write-only
and encrypted, a transmitter's policy and algorithms are validated."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from shared_signals.models import CaepEvent, SsfReceiver, SsfTransmitter


@pytest.fixture
def staff(client: Any, django_user_model: Any) -> Any:
    from accounts.testing import sign_in_with_second_factor

    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-for-admin-tests")
    return sign_in_with_second_factor(client, admin, "pw-for-admin-tests")


@pytest.mark.parametrize("model", ["ssfreceiver", "ssftransmitter", "setdelivery", "receivedset"])
def test_changelists_load(staff: Any, model: str) -> None:
    assert staff.get(reverse(f"admin:shared_signals_{model}_changelist")).status_code == 200


# Long enough (and with "." and "!", outside base64url) that it cannot turn up in a Fernet token by chance;
# "xyz" did, once in a few thousand runs.
SECRET = "rp.token!4f0c2d"


def test_receiver_form_encrypts_the_authorization_header(staff: Any) -> None:
    response = staff.post(reverse("admin:shared_signals_ssfreceiver_add"), {
        "name": "RP", "audience": "https://rp.example.com", "endpoint_url": "https://rp.example.com/events",
        "events_requested": f'["{CaepEvent.SESSION_REVOKED.value}"]', "authorization_header": f"Bearer {SECRET}",
        "enabled": "on", "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
    })
    assert response.status_code == 302, response.content
    receiver = SsfReceiver.objects.get()
    assert receiver.authorization_header() == f"Bearer {SECRET}"
    assert SECRET not in receiver.authorization_header_encrypted
    page = staff.get(reverse("admin:shared_signals_ssfreceiver_change", args=[receiver.pk])).content.decode()
    assert SECRET not in page


@pytest.mark.parametrize("fields", [
    {"policy": {CaepEvent.SESSION_REVOKED.value: "delete_everything"}},
    {"policy": {"urn:unknown": "revoke"}},
    {"allowed_algs": ["HS256"]},
    {"allowed_algs": ["none"]},
    {"jwks": {}, "jwks_uri": ""},
    {"jwks_uri": "http://mdm.example.com/jwks.json", "jwks": {}},
    # Another shape (written by code or SQL): refused, never read by key or member into a TypeError.
    {"jwks": 5, "jwks_uri": "https://mdm.example.com/jwks.json"},
    {"jwks": [{"kty": "EC"}]},
    {"allowed_algs": 5},
    {"allowed_algs": "ES256"},
    {"allowed_algs": {"ES256": True}},
    {"allowed_algs": [["ES256"]]},
    {"policy": 5},
    {"policy": [CaepEvent.SESSION_REVOKED.value]},
])
def test_transmitter_validation(db: Any, fields: dict[str, Any], settings: Any) -> None:
    settings.DEBUG, settings.TESTING = False, False
    values = {"name": "MDM", "issuer": "https://mdm.example.com", "audience": "a",
              "jwks": {"keys": [{"kty": "EC"}]}, **fields}
    with pytest.raises(ValidationError):
        SsfTransmitter(**values).full_clean()
