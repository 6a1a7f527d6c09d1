"""A client deactivated without the revocation signal holds no live token anywhere.

Deactivating a client in the admin or through the flows saves it, and the ``post_save``
receiver ends its families and its tokens outside them (``sessions.flows.cascade``).
``Client.objects....update(is_active=False)`` announces itself the same way
(test_config_bulk_writes.py); raw SQL or a data migration skips both, and raw SQL (or another
process's update, until it commits) also leaves the token endpoint's per-process
copy of the client (``core.config_cache``) as it was, and these tests write that way
(``tests.written_elsewhere``): the stalest case. As for a deactivated user (test_deactivated_user_tokens.py), the check is made where
the token is used: a token whose client, or whose family's client (an exchanged token lives in
its subject token's family), is inactive is judged inactive at our resource endpoints, at
introspection, as a token-exchange subject and at refresh. The rows stay as they were: a
client reactivated the same way gets its unexpired tokens back.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clients.flows.registration import RegisteredClient
from clients.models import Client
from core import config_cache, keys
from core.events import EventType
from core.models import SecurityEvent
from idp.oauth import introspect_jwt
from sessions.models import AccessToken, DeviceSession, RefreshToken, SessionStatus
from tests.written_elsewhere import elsewhere

from .test_introspection_revocation_userinfo import introspect
from .test_query_budgets import statements
from .test_token import refresh
from .test_token_exchange import _exchange, backend  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def _deactivate_behind_the_signal(registered: RegisteredClient) -> None:
    elsewhere(Client).filter(pk=registered.client.pk).update(is_active=False)


def _rows() -> tuple[list[Any], ...]:
    return (
        list(AccessToken.objects.order_by("pk").values_list("jti", "revoked_at")),
        list(RefreshToken.objects.order_by("pk").values_list("pk", "revoked_at", "rotated_at")),
        list(DeviceSession.objects.order_by("pk").values_list("pk", "status")),
        list(Client.objects.order_by("pk").values_list("pk", "is_active")),
    )


def _userinfo(access_token: str) -> Any:
    return HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {access_token}")


def _last(event_type: EventType) -> SecurityEvent:
    return SecurityEvent.objects.filter(event_type=event_type).latest("id")


@pytest.fixture(params=["one_statement", "general"])
def introspection_path(request: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both introspection paths: PostgreSQL's one statement (``introspect_jwt``) and the general one."""
    if request.param == "general":
        monkeypatch.setattr(introspect_jwt, "applies", lambda *args: None)
    elif connection.vendor != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's")
    return str(request.param)


# --- our resource endpoints ------------------------------------------------------------------
def test_userinfo_refuses_the_token_of_a_deactivated_client_and_says_why(tokens, mobile_client):
    assert _userinfo(tokens["access_token"]).status_code == 200
    _deactivate_behind_the_signal(mobile_client)
    before = _rows()
    response = _userinfo(tokens["access_token"])
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token",
                               "error_description": "The access token's client is no longer active."}
    assert response["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert "no-store" in response["Cache-Control"]
    refused = _last(EventType.RESOURCE_TOKEN_REFUSED)
    assert (refused.outcome, refused.reason, refused.details["detail"]) == ("denied", "invalid_token",
                                                                            "client_inactive")
    assert _rows() == before  # judged, not revoked


def test_a_deactivated_client_is_told_before_a_step_up_no_one_can_answer(tokens, mobile_client):
    DeviceSession.objects.update(status=SessionStatus.STEP_UP_REQUIRED)
    _deactivate_behind_the_signal(mobile_client)
    response = _userinfo(tokens["access_token"])
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    assert _last(EventType.RESOURCE_TOKEN_REFUSED).details["detail"] == "client_inactive"


def test_the_refusal_costs_only_its_event(tokens, mobile_client):
    """The token's client and its family's are joined into the token's one look-up
    (test_query_budgets.py::test_userinfo_query_budget); the refusal adds only its event."""
    assert _userinfo(tokens["access_token"]).status_code == 200  # warms this process's copies (the keys)
    _deactivate_behind_the_signal(mobile_client)
    with CaptureQueriesContext(connection) as refused:
        assert _userinfo(tokens["access_token"]).status_code == 401
    assert len(statements(refused)) == 2, statements(refused)


# --- introspection ---------------------------------------------------------------------------
def test_an_access_token_of_a_deactivated_client_is_inactive_at_introspection(
    tokens, service_client, mobile_client, introspection_path,
):
    """The resource server (``service_client``, still active) asks about the app's token."""
    assert introspect(service_client, tokens["access_token"]).json()["active"] is True
    _deactivate_behind_the_signal(mobile_client)
    before = _rows()
    assert introspect(service_client, tokens["access_token"]).json() == {"active": False}
    recorded = _last(EventType.OAUTH_INTROSPECTION)
    assert (recorded.outcome, recorded.reason) == ("info", "inactive")
    assert _rows() == before


def test_a_refresh_token_of_a_deactivated_client_is_inactive_at_introspection(service_tokens, service_client):
    """The client asks about its own refresh token, its copy in this process from before the
    update (so it still authenticates): the family's client is read from the database."""
    token = service_tokens["refresh_token"]
    assert introspect(service_client, token, token_type_hint="refresh_token").json()["active"] is True
    _deactivate_behind_the_signal(service_client)
    before = _rows()
    assert introspect(service_client, token, token_type_hint="refresh_token").json() == {"active": False}
    assert _rows() == before


def test_an_exchanged_token_ends_with_its_familys_client(tokens, backend, mobile_client,  # noqa: F811
                                                         introspection_path):
    """An exchanged token is the backend's, in the app's family: the cascade ends it with the
    app's families, so an update deactivating the app must not leave it live either."""
    exchanged = _exchange(backend, tokens["access_token"], scope="profile").json()["access_token"]
    assert introspect(backend, exchanged).json()["active"] is True
    _deactivate_behind_the_signal(mobile_client)
    before = _rows()
    assert introspect(backend, exchanged).json() == {"active": False}
    assert _rows() == before


# --- token exchange and refresh ----------------------------------------------------------------
def test_a_deactivated_clients_token_cannot_be_exchanged(tokens, backend, mobile_client):  # noqa: F811
    _deactivate_behind_the_signal(mobile_client)
    before = _rows()
    response = _exchange(backend, tokens["access_token"], scope="profile")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert _rows() == before
    assert _last(EventType.OAUTH_TOKEN_EXCHANGE_REFUSED).reason == "subject_token_inactive"


def test_a_refresh_by_a_client_this_process_still_holds_as_active_is_refused(tokens, mobile_client):
    """This process's copy of the client predates the update (nothing told the copies): the
    client authenticates, and the family's client, read with the refresh token, refuses it."""
    keys.ensure_keys()
    warm = refresh(tokens["refresh_token"], mobile_client.client.client_id)  # the copy now holds the client
    assert warm.status_code == 200
    _deactivate_behind_the_signal(mobile_client)
    before = _rows()
    response = refresh(warm.json()["refresh_token"], mobile_client.client.client_id)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert _rows() == before  # not rotated, not revoked
    refused = _last(EventType.OAUTH_REFRESH_REFUSED)
    assert (refused.outcome, refused.reason, refused.client_id) == ("denied", "client_inactive",
                                                                    mobile_client.client.client_id)


def test_a_refresh_by_a_client_read_afresh_fails_its_authentication(tokens, mobile_client):
    """Without a copy, client authentication reads only active clients: ``invalid_client``."""
    _deactivate_behind_the_signal(mobile_client)
    config_cache.clear_local()
    before = _rows()
    response = refresh(tokens["refresh_token"], mobile_client.client.client_id)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert _rows() == before
    assert not SecurityEvent.objects.filter(event_type=EventType.OAUTH_TOKEN_REFRESHED).exists()


# --- what stays as it was ----------------------------------------------------------------------
def test_the_tokens_of_an_active_client_still_work(tokens, service_client, mobile_client, backend):  # noqa: F811
    """Another client deactivated the same way changes nothing for the app's tokens."""
    _deactivate_behind_the_signal(service_client)
    assert _userinfo(tokens["access_token"]).status_code == 200
    assert introspect(backend, tokens["access_token"]).json()["active"] is True
    assert _exchange(backend, tokens["access_token"], scope="profile").status_code == 200
    assert refresh(tokens["refresh_token"], mobile_client.client.client_id).status_code == 200


def test_reactivated_the_same_way_the_tokens_work_again(tokens, service_client, mobile_client):
    """Nothing was revoked: the judgement follows the client's state (a revoked family would not)."""
    _deactivate_behind_the_signal(mobile_client)
    assert introspect(service_client, tokens["access_token"]).json()["active"] is False
    elsewhere(Client).filter(pk=mobile_client.client.pk).update(is_active=True)
    assert introspect(service_client, tokens["access_token"]).json()["active"] is True
    assert _userinfo(tokens["access_token"]).status_code == 200
