"""Emergency rotation with a key already queued (issue 13): ``rotate_keys --now`` while a
scheduled successor waits its publish-ahead hour used to leave that older key queued, and
when its hour came it replaced the emergency key. Now the emergency withdraws it, and a
queued key never replaces an active key created after it."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import Any

import jwt
import pytest
from django.core.management import call_command

from core import jwt_tokens, keys
from core.models import KeyStatus, SecurityEvent, SigningKey

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def _published() -> set[str]:
    return {k["kid"] for k in keys.jwks()["keys"]}


def _signing_kid(alg: str) -> str:
    return jwt.get_unverified_header(jwt_tokens.sign({"iss": keys.app_settings.ISSUER}, alg=alg))["kid"]


def test_emergency_rotation_withdraws_the_key_still_queued(time_machine: Any) -> None:
    time_machine.move_to(START)
    compromised, _ = keys.active_key("ES256")
    queued = keys.rotate("ES256")  # the scheduled successor: signs at START + 1 h
    time_machine.move_to(START + dt.timedelta(minutes=5))
    out = StringIO()
    call_command("rotate_keys", "--alg", "ES256", "--now", stdout=out)
    emergency = SigningKey.objects.get(alg="ES256", status=KeyStatus.ACTIVE)
    assert f"withdrew {queued.kid}" in out.getvalue()
    event = SecurityEvent.objects.get(event_type="keys.rotated")
    assert event.details["kid"] == emergency.kid and event.details["withdrawn"] == [queued.kid]
    assert emergency.kid not in {compromised, queued.kid}
    assert SigningKey.objects.get(kid=queued.kid).status == KeyStatus.RETIRED
    assert queued.kid not in _published()  # it never signed: gone at once
    assert SigningKey.objects.get(kid=compromised).status == KeyStatus.RETIRING

    time_machine.move_to(START + dt.timedelta(hours=2))  # the queued key's hour has passed
    assert keys.active_key("ES256")[0] == emergency.kid
    assert _signing_kid("ES256") == emergency.kid
    assert SigningKey.objects.get(kid=emergency.kid).status == KeyStatus.ACTIVE


def test_emergency_rotation_leaves_other_algorithms_queue_alone(time_machine: Any) -> None:
    time_machine.move_to(START)
    keys.ensure_keys()
    queued_rs = keys.rotate("RS256")
    keys.rotate("ES256", immediately=True)
    assert SigningKey.objects.get(kid=queued_rs.kid).status == KeyStatus.NEXT
    time_machine.move_to(START + dt.timedelta(hours=2))
    assert keys.active_key("RS256")[0] == queued_rs.kid


def test_a_stale_queued_key_left_by_an_earlier_version_is_withdrawn(time_machine: Any) -> None:
    """A database where the bug already happened: the emergency key is active and the older
    successor still waits. Its hour comes: it is withdrawn, the emergency key keeps signing."""
    time_machine.move_to(START)
    keys.ensure_keys()
    stale = keys.create_key("ES256", status=KeyStatus.NEXT, activates_at=START + dt.timedelta(hours=1))
    time_machine.move_to(START + dt.timedelta(minutes=5))
    old_active = SigningKey.objects.get(alg="ES256", status=KeyStatus.ACTIVE)
    emergency = keys.create_key("ES256", status=KeyStatus.NEXT, activates_at=START + dt.timedelta(minutes=5))
    keys.advance()  # what --now did before: promote the new key, leave the queue as it was
    assert SigningKey.objects.get(kid=emergency.kid).status == KeyStatus.ACTIVE
    assert SigningKey.objects.get(kid=old_active.kid).status == KeyStatus.RETIRING

    time_machine.move_to(START + dt.timedelta(hours=2))
    assert f"withdrawn {stale.kid}" in keys.advance()
    assert keys.active_key("ES256")[0] == emergency.kid
    assert stale.kid not in _published()


def test_two_scheduled_keys_due_together_end_with_the_newest_signing(time_machine: Any) -> None:
    time_machine.move_to(START)
    keys.ensure_keys()
    first = keys.rotate("ES256")
    time_machine.move_to(START + dt.timedelta(minutes=10))
    second = keys.rotate("ES256")
    time_machine.move_to(START + dt.timedelta(hours=3))  # nothing ran meanwhile: both are due
    keys.advance()
    assert keys.active_key("ES256")[0] == second.kid
    assert SigningKey.objects.get(kid=first.kid).status == KeyStatus.RETIRING
    assert SigningKey.objects.filter(alg="ES256", status=KeyStatus.ACTIVE).count() == 1
