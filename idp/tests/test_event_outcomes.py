"""An event's outcome is an ``Outcome`` member (docs/security-events.md "Outcomes"): ``build``
and ``record`` refuse anything else, even a string equal to a member's value, and store the
member's value, which reads back as that member."""

from __future__ import annotations

from typing import Any

import pytest

from core.events import EventType, Outcome, atomic_with_events, batched, build, record
from core.models import SecurityEvent

pytestmark = pytest.mark.django_db

NOT_MEMBERS = ["success", "denied", "allowed", "", None, 1]


@pytest.mark.parametrize("outcome", NOT_MEMBERS)
def test_build_refuses_an_outcome_outside_the_enum(outcome: Any) -> None:
    with pytest.raises(TypeError, match="core.events.Outcome"):
        build(EventType.LOGOUT, outcome=outcome)


@pytest.mark.parametrize("outcome", NOT_MEMBERS)
def test_record_refuses_it_and_stores_nothing(outcome: Any) -> None:
    with pytest.raises(TypeError):
        record(EventType.LOGOUT, outcome=outcome, reason="typo")
    with pytest.raises(TypeError), batched():
        record(EventType.LOGOUT, outcome=outcome, reason="typo")
    with pytest.raises(TypeError), atomic_with_events() as events:
        events.record(EventType.LOGOUT, outcome=outcome, reason="typo")
    assert not SecurityEvent.objects.exists()


def test_every_member_is_stored_as_its_value_and_reads_back_as_the_member() -> None:
    written = [record(EventType.LOGOUT, outcome=outcome) for outcome in Outcome]
    stored = SecurityEvent.objects.filter(pk__in=[event.pk for event in written]).order_by("pk")
    assert list(stored.values_list("outcome", flat=True)) == [outcome.value for outcome in Outcome]
    assert [Outcome(event.outcome) for event in stored] == list(Outcome)


def test_success_is_the_default() -> None:
    assert record(EventType.LOGOUT).outcome is Outcome.SUCCESS
    assert SecurityEvent.objects.get().outcome == "success"


def test_the_field_offers_exactly_the_members() -> None:
    """The admin's filter and form show these choices (core migration 0004)."""
    field = SecurityEvent._meta.get_field("outcome")
    assert [value for value, _ in field.choices or []] == [outcome.value for outcome in Outcome]
    assert max(len(outcome.value) for outcome in Outcome) <= (field.max_length or 0)
