"""Issue 12, items 5 and 6: a refresh whose response was lost is safely retryable, and the
grace window hands out the same successor rather than a second live token, so a thief
replaying a stolen predecessor cannot take the family over (RFC 9700 §4.14.2)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from core.crypto import token_digest
from core.models import SecurityEvent
from sessions.models import AccessToken, DeviceSession, RefreshToken, SessionStatus

from .test_token import refresh

pytestmark = pytest.mark.django_db


def live_tokens() -> list[bytes]:
    return [bytes(h) for h in RefreshToken.objects.filter(rotated_at__isnull=True, revoked_at__isnull=True)
            .values_list("token_hash", flat=True)]


@pytest.fixture
def frozen(time_machine: Any) -> Any:
    time_machine.move_to(dt.datetime.now(tz=dt.UTC), tick=False)
    return time_machine


def test_a_lost_response_is_answered_again_with_the_same_successor(tokens: Any, mobile_client: Any) -> None:
    client_id = mobile_client.client.client_id
    lost = refresh(tokens["refresh_token"], client_id).json()  # the app never sees this
    rows = RefreshToken.objects.count()
    retried = refresh(tokens["refresh_token"], client_id)
    assert retried.status_code == 200, retried.content
    assert retried.json()["refresh_token"] == lost["refresh_token"]
    assert retried.json()["access_token"] != lost["access_token"]
    assert RefreshToken.objects.count() == rows  # nothing new became live
    assert live_tokens() == [token_digest(lost["refresh_token"])]
    assert not RefreshToken.objects.filter(revoked_at__isnull=False).exists()
    event = SecurityEvent.objects.get(event_type="oauth.refresh_retried")
    assert event.session_id == DeviceSession.objects.get().sid and event.details["jti"]
    assert refresh(lost["refresh_token"], client_id).status_code == 200  # the chain goes on
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE


def test_each_retry_inside_the_window_works_and_keeps_one_live_token(tokens: Any, mobile_client: Any) -> None:
    client_id = mobile_client.client.client_id
    successors = {refresh(tokens["refresh_token"], client_id).json()["refresh_token"] for _ in range(4)}
    assert len(successors) == 1
    assert live_tokens() == [token_digest(successors.pop())]
    assert AccessToken.objects.filter(revoked_at__isnull=True).count() == 5  # the login's and four refreshes'


def test_a_retry_after_the_window_is_reuse(tokens: Any, mobile_client: Any, frozen: Any, settings: Any) -> None:
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 10
    client_id = mobile_client.client.client_id
    successor = refresh(tokens["refresh_token"], client_id).json()["refresh_token"]
    frozen.shift(dt.timedelta(seconds=11))
    assert refresh(tokens["refresh_token"], client_id).json()["error"] == "invalid_grant"
    assert refresh(successor, client_id).json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status_reason == "refresh_token_reuse"
    assert SecurityEvent.objects.filter(event_type="oauth.refresh_refused", reason="reuse").exists()


def test_presenting_a_token_whose_successor_was_used_is_reuse(tokens: Any, mobile_client: Any) -> None:
    client_id = mobile_client.client.client_id
    successor = refresh(tokens["refresh_token"], client_id).json()["refresh_token"]
    latest = refresh(successor, client_id).json()["refresh_token"]
    assert refresh(tokens["refresh_token"], client_id).json()["error"] == "invalid_grant"  # inside the window
    assert refresh(latest, client_id).json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert not live_tokens()


@pytest.mark.parametrize("second", ["client", "thief"])
def test_a_stolen_predecessor_replayed_in_the_window_cannot_take_the_family_over(
    tokens: Any, mobile_client: Any, frozen: Any, settings: Any, second: str
) -> None:
    """The reproduction: with grace 10 s the thief's replay used to get a new successor and
    revoke the client's. Now it gets the client's own successor; whichever of the two uses it
    after the other (outside the window) is reuse, and the whole family goes, thief's chain too."""
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 10
    client_id = mobile_client.client.client_id
    stolen = tokens["refresh_token"]
    clients = refresh(stolen, client_id).json()["refresh_token"]
    frozen.shift(dt.timedelta(seconds=5))
    thiefs = refresh(stolen, client_id).json()["refresh_token"]
    assert thiefs == clients  # no second live token: nothing to take over with
    first, later = ("thief", "client") if second == "client" else ("client", "thief")
    chain = {"thief": thiefs, "client": clients}
    ahead = refresh(chain[first], client_id).json()["refresh_token"]
    frozen.shift(dt.timedelta(minutes=5))  # the other party's next refresh, when its access token expires
    assert refresh(chain[later], client_id).json()["error"] == "invalid_grant"
    assert refresh(ahead, client_id).json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status_reason == "refresh_token_reuse"
    assert not live_tokens()
    assert not AccessToken.objects.filter(revoked_at__isnull=True).exists()


def test_a_retry_across_a_rotation_of_the_key_encryption_secret_gets_the_same_successor(
    tokens: Any, mobile_client: Any, settings: Any
) -> None:
    client_id = mobile_client.client.client_id
    lost = refresh(tokens["refresh_token"], client_id).json()["refresh_token"]
    settings.IDP_KEY_ENCRYPTION_SECRET_FALLBACKS = [settings.IDP_KEY_ENCRYPTION_SECRET]
    settings.IDP_KEY_ENCRYPTION_SECRET = "the-next-key-encryption-secret"
    retried = refresh(tokens["refresh_token"], client_id)
    assert retried.status_code == 200, retried.content
    assert retried.json()["refresh_token"] == lost
    assert refresh(lost, client_id).status_code == 200


def test_a_token_the_old_grace_retry_revoked_is_reuse(tokens: Any, mobile_client: Any) -> None:
    """The retired grace retry revoked the successor it replaced and left the family active:
    presenting that token now revokes the whole family, the other chain included."""
    client_id = mobile_client.client.client_id
    replaced = refresh(tokens["refresh_token"], client_id).json()["refresh_token"]
    RefreshToken.objects.filter(token_hash=token_digest(replaced)).update(revoked_at=dt.datetime.now(tz=dt.UTC))
    other_chain = RefreshToken.objects.create(
        token_hash=token_digest("the thief's chain"), session=DeviceSession.objects.get(),
        expires_at=dt.datetime.now(tz=dt.UTC) + dt.timedelta(days=1),
    )
    assert refresh(replaced, client_id).json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status_reason == "refresh_token_reuse"
    assert RefreshToken.objects.get(pk=other_chain.pk).revoked_at is not None
    assert refresh("the thief's chain", client_id).json()["error"] == "invalid_grant"
    assert SecurityEvent.objects.filter(event_type="oauth.refresh_refused", reason="reuse").exists()
