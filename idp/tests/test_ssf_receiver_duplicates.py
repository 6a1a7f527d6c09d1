"""A SET delivered again is acknowledged, not refused (RFC 8935 §2: "The SET Transmitter MAY
transmit the same SET to the SET Recipient multiple times ... The SET Recipient MUST respond as
it would if the SET had not been previously received"): a transmitter whose 202 was lost and
retries gets 202 again, nothing is applied twice, and the duplicate is recorded as such. A
different SET reusing an accepted ``jti`` is still refused and changes nothing."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.test import Client as HttpClient

from core.models import SecurityEvent
from sessions.models import DeviceSession, SessionStatus
from shared_signals.models import ReceivedSet, SsfTransmitter
from shared_signals.testing import LoopbackTransmitter

from .test_ssf_receiver import (  # noqa: F401  # fixtures, used by name
    AUDIENCE,
    REVOKED,
    iss_sub,
    mdm,
    opaque,
    post,
    registered,
    session_factory,
    state,
)


def _events(event_type: str) -> int:
    return SecurityEvent.objects.filter(event_type=event_type).count()


def test_a_set_delivered_again_is_acknowledged_and_applied_once(
    registered: SsfTransmitter, mdm: LoopbackTransmitter, session_factory: Any, user: Any, client: HttpClient,
) -> None:
    session_factory("s1")
    claims = mdm.claims(AUDIENCE, REVOKED, {"format": "complex", "user": iss_sub(user)})
    token = mdm.sign(claims)
    assert post(client, registered, token).status_code == 202
    assert DeviceSession.objects.get(sid="s1").status == SessionStatus.REVOKED
    session_factory("s2")  # signed in again after the revocation: a second apply would revoke it
    before = state()
    again = post(client, registered, token)  # the transmitter's retry after a lost 202
    assert (again.status_code, again.content) == (202, b"")
    cache.clear()  # the accepted row alone recognises it
    assert post(client, registered, token).status_code == 202
    # Signed afresh (ES256 signatures differ each time; Vigil's own transmitter re-signs every
    # attempt): the same SET, so the same answer.
    assert post(client, registered, mdm.sign(claims)).status_code == 202
    assert state() == before and DeviceSession.objects.get(sid="s2").status == SessionStatus.ACTIVE
    assert ReceivedSet.objects.count() == 1
    assert (_events("ssf.set.received"), _events("ssf.action"), _events("ssf.set.duplicate")) == (1, 1, 3)
    duplicate = SecurityEvent.objects.filter(event_type="ssf.set.duplicate").first()
    assert duplicate is not None and duplicate.outcome == "success"
    assert duplicate.details["jti"] == claims["jti"] and duplicate.details["transmitter"] == "MDM"
    assert not _events("ssf.set.refused")


def test_another_set_reusing_an_accepted_jti_is_still_refused(
    registered: SsfTransmitter, mdm: LoopbackTransmitter, session_factory: Any, client: HttpClient,
) -> None:
    session_factory("s1")
    first = mdm.claims(AUDIENCE, REVOKED, opaque("s1"))
    assert post(client, registered, mdm.sign(first)).status_code == 202
    session_factory("s2")
    before = state()
    for reused in (
        mdm.claims(AUDIENCE, REVOKED, opaque("s2"), jti=first["jti"]),  # another subject
        first | {"iat": first["iat"] - 1},  # the same events, another SET
        first | {"txn": "another-cause"},
    ):
        for _ in range(2):
            refused = post(client, registered, mdm.sign(reused))
            assert refused.status_code == 400 and refused.json() == {"err": "invalid_request",
                                                                     "description": "replayed jti"}
            cache.clear()  # the accepted row refuses it as well
    assert state() == before and DeviceSession.objects.get(sid="s2").status == SessionStatus.ACTIVE
    assert _events("ssf.set.refused") == 6 and not _events("ssf.set.duplicate")


def test_a_refused_reuse_after_a_cache_loss_does_not_hide_the_genuine_retry(
    registered: SsfTransmitter, mdm: LoopbackTransmitter, session_factory: Any, client: HttpClient,
) -> None:
    """The cache lost the accepted SET's claim; another SET reusing its ``jti`` claims the cache
    first and is refused by the row: its claim goes with it, so the transmitter's retry of the
    accepted SET is still acknowledged, not refused as that other SET's replay."""
    session_factory("s1")
    first = mdm.claims(AUDIENCE, REVOKED, opaque("s1"))
    token = mdm.sign(first)
    assert post(client, registered, token).status_code == 202
    cache.clear()
    assert post(client, registered, mdm.sign(first | {"txn": "another-cause"})).status_code == 400
    before = state()
    assert post(client, registered, token).status_code == 202
    assert state() == before and ReceivedSet.objects.count() == 1
    assert (_events("ssf.set.refused"), _events("ssf.set.duplicate")) == (1, 1)
