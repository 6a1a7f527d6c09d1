"""A user deactivated without the revocation signal holds no live token anywhere.

A save of the user revokes its families (``sessions.flows.cascade``'s ``post_save`` receiver),
and so does ``User.objects....update(is_active=False)`` or ``bulk_update`` (a bulk admin action,
a script, a directory sync through Django: ``accounts.models.UserQuerySet``, tested at the end).
Raw SQL, a data migration or a directory writing the table itself skips both (the tests write
through the base manager's plain queryset, ``tests.written_elsewhere``).
Zero trust means the check is made where the token is used, not only where it is revoked: every
place that judges a token also asks whether its user is still active. The token rows stay as
they were (a reactivated user's unexpired tokens work again, as after ``is_active`` flips back).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest
from django.test import Client as HttpClient
from django.test import RequestFactory
from django.urls import reverse

from core.events import EventType
from core.models import SecurityEvent
from idp.flows import resource
from sessions.models import AccessToken, DeviceSession, RefreshToken, SessionStatus
from tests.written_elsewhere import elsewhere

from .test_introspection_revocation_userinfo import introspect
from .test_token_exchange import ORDERS, _exchange, backend  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db
#: The identifier of the resource endpoint these requests are for (the tokens' aud is their client).
API = "https://id.example.com/api"


def _deactivate_behind_the_signal(user: Any) -> None:
    elsewhere(type(user)).filter(pk=user.pk).update(is_active=False)


def _rows() -> tuple[list[Any], list[Any], list[Any]]:
    return (
        list(AccessToken.objects.values_list("jti", "revoked_at")),
        list(RefreshToken.objects.values_list("pk", "revoked_at", "rotated_at")),
        list(DeviceSession.objects.values_list("pk", "status")),
    )


def test_a_refresh_token_of_a_deactivated_user_is_inactive_at_introspection(service_tokens, service_client, user):
    token = service_tokens["refresh_token"]
    assert introspect(service_client, token, token_type_hint="refresh_token").json()["active"] is True
    _deactivate_behind_the_signal(user)
    before = _rows()
    assert introspect(service_client, token, token_type_hint="refresh_token").json() == {"active": False}
    assert _rows() == before  # judged, not revoked: the family is still active in the database
    assert DeviceSession.objects.filter(user=user, status=SessionStatus.ACTIVE).exists()


def test_an_access_token_of_a_deactivated_user_is_inactive_on_the_general_path(tokens, service_client, user,
                                                                               settings):
    """The general introspection path (SQLite, or any token the one statement does not take)."""
    _deactivate_behind_the_signal(user)
    before = _rows()
    assert introspect(service_client, tokens["access_token"]).json() == {"active": False}
    assert _rows() == before


def test_a_protected_resource_refuses_a_deactivated_users_token_and_says_why(tokens, user):
    """``idp.flows.resource.authorize`` (what our own APIs call) refuses with RFC 6750's
    ``invalid_token`` and records the reason ``user_inactive``, not "expired"."""
    assert resource.authorize(_api_request(tokens), resource=API).token.user_id == user.pk
    _deactivate_behind_the_signal(user)
    assert _refusal(_api_request(tokens)) == (resource.ResourceErrorCode.INVALID_TOKEN, "user_inactive")


def test_a_deactivated_user_awaiting_step_up_is_told_user_inactive_not_step_up(tokens, user):
    """No step-up can help a deactivated user: the reason says what would."""
    DeviceSession.objects.update(status=SessionStatus.STEP_UP_REQUIRED)
    _deactivate_behind_the_signal(user)
    assert _refusal(_api_request(tokens)) == (resource.ResourceErrorCode.INVALID_TOKEN, "user_inactive")


def _api_request(tokens: dict[str, Any]) -> HttpRequest:
    return RequestFactory().get("/api", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")


def _refusal(request: HttpRequest) -> tuple[str, str]:
    """The error ``resource.authorize`` raises and the reason its event records."""
    with pytest.raises(resource.ResourceError) as refused:
        resource.authorize(request, resource=API)
    event = SecurityEvent.objects.filter(event_type=EventType.RESOURCE_TOKEN_REFUSED).latest("id")
    return refused.value.error, event.details["detail"]


def test_a_deactivated_users_token_cannot_be_exchanged(tokens, backend, user):  # noqa: F811
    _deactivate_behind_the_signal(user)
    before = _rows()
    response = _exchange(backend, tokens["access_token"], scope="profile")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert _rows() == before
    assert SecurityEvent.objects.filter(
        event_type=EventType.OAUTH_TOKEN_EXCHANGE_REFUSED, reason="subject_token_inactive").exists()


def test_a_deactivated_users_refresh_is_refused_and_changes_nothing(tokens, mobile_client, user):
    from .test_token import refresh

    _deactivate_behind_the_signal(user)
    before = _rows()
    response = refresh(tokens["refresh_token"], mobile_client.client.client_id)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert _rows() == before
    refused = SecurityEvent.objects.latest("id")
    assert (refused.event_type, refused.outcome, refused.reason) == (EventType.OAUTH_ERROR, "failure", "invalid_grant")


def test_reactivated_the_same_way_the_tokens_work_again(tokens, service_client, user):
    """Nothing was revoked: the judgement follows the user's state (a revoked family would not)."""
    _deactivate_behind_the_signal(user)
    assert introspect(service_client, tokens["access_token"]).json()["active"] is False
    type(user).objects.filter(pk=user.pk).update(is_active=True)
    assert introspect(service_client, tokens["access_token"]).json()["active"] is True
    response = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert response.status_code == 200


# --- a bulk deactivation through Django revokes, as a save does --------------------------------


@pytest.mark.parametrize("write", ["update", "bulk_update"])
def test_a_bulk_deactivation_revokes_the_users_families_on_record(write, tokens, service_client, user):
    """``UserQuerySet`` sees what Django sends no ``post_save`` for: the families end and are
    recorded (and announced), instead of being only refused where used."""
    users = type(user).objects
    if write == "update":
        assert users.filter(pk=user.pk).update(is_active=False) == 1
    else:
        user.is_active = False
        assert users.bulk_update([user], ["is_active"]) == 1
    session = DeviceSession.objects.get(user=user)
    assert (session.status, session.status_reason) == (SessionStatus.REVOKED, "user_deactivated")
    assert SecurityEvent.objects.filter(event_type="session.revoked", session_id=session.sid).count() == 1
    assert not RefreshToken.objects.filter(session=session, revoked_at=None).exists()
    assert introspect(service_client, tokens["access_token"]).json() == {"active": False}


def test_a_bulk_write_that_deactivates_no_one_revokes_nothing(tokens, user):
    events, before = SecurityEvent.objects.count(), _rows()
    users = type(user).objects
    assert users.filter(pk=user.pk).update(first_name="Alice") == 1
    assert users.filter(pk=user.pk).update(is_active=True) == 1
    user.refresh_from_db()
    assert users.bulk_update([user], ["is_active", "last_name"]) == 1  # still active
    assert (SecurityEvent.objects.count(), _rows()) == (events, before)
