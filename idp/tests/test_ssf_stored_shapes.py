"""Shared-signals rows stored in a wrong shape (before the admin's shape checks,
``core.json_form_fields``, or behind them: raw SQL, an older release) are read as holding
nothing (``core.json_shapes``): a push is refused or applied by the defaults, never a 500, and
a receiver wants no event."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient

from shared_signals.models import SsfReceiver, SsfTransmitter
from shared_signals.testing import LoopbackTransmitter

from .test_ssf_receiver import AUDIENCE, REVOKED, mdm, opaque, post, registered, session_factory, state  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("stored", [
    {"jwks": ["not", "an", "object"]},
    {"jwks": "text"},
    {"jwks": 5},
    {"allowed_algs": 5},
    {"allowed_algs": {"ES256": True}},
    {"allowed_algs": [["ES256"]]},
], ids=["jwks-list", "jwks-string", "jwks-number", "algs-number", "algs-object", "algs-nested"])
def test_a_transmitter_stored_in_a_wrong_shape_refuses_the_push_without_a_500(
    stored: dict[str, Any], registered: SsfTransmitter, mdm: LoopbackTransmitter, session_factory: Any,
    client: HttpClient,
) -> None:
    session_factory("s1")
    SsfTransmitter.objects.filter(pk=registered.pk).update(**stored)
    registered.refresh_from_db()
    before = state()
    response = post(client, registered, mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque("s1"))))
    assert 400 <= response.status_code < 500, response.content
    assert state() == before


@pytest.mark.parametrize("policy", [5, "revoke", ["revoke"], {REVOKED: ["revoke"]}])
def test_a_policy_stored_in_a_wrong_shape_names_no_action(policy: Any, registered: SsfTransmitter) -> None:
    SsfTransmitter.objects.filter(pk=registered.pk).update(policy=policy)
    registered.refresh_from_db()
    assert registered.action_for(REVOKED) is None  # the event's default action applies


@pytest.mark.parametrize("events", [5, REVOKED, {REVOKED: True}])
def test_a_receiver_whose_events_are_stored_in_a_wrong_shape_wants_none(events: Any) -> None:
    receiver = SsfReceiver(name="SIEM", endpoint_url="https://siem.example.com/ssf", events_requested=events)
    assert receiver.wants(REVOKED) is False
