"""A request object lives at most ``IDP_REQUEST_OBJECT_MAX_LIFETIME_SECONDS`` (default one hour,
as Keycloak's secure-request-object "available period" and FAPI 2.0 Message Signing §5.3.2):
``exp`` no further than that after ``iat``, after ``nbf`` and after now. A longer-lived one (a
copied object that would work for days) is ``invalid_request_object``, a security event, with
no code issued, by value at /authorize as pushed to /par. FAPI 2.0 clients keep their 60
minutes under a higher setting (a lower one bounds them too)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from core.models import SecurityEvent
from sessions.models import AuthorizationCode

from .conftest import SERVICE_REDIRECT, query_of
from .jar_support import authenticated, authorize_url, keyed_client, push, request_object, request_params

pytestmark = pytest.mark.django_db

DAY = 86_400


@pytest.fixture
def keyed(db: Any) -> tuple[Any, Any]:
    return keyed_client("jar-lifetime")


def _authorize(browser: Any, client: Any, signed: str) -> dict[str, str]:
    response = browser.get(authorize_url(client.client_id, request=signed, redirect_uri=SERVICE_REDIRECT))
    assert response.status_code == 302 and response["Location"].startswith(SERVICE_REDIRECT + "?"), response
    return query_of(response["Location"])


def _refusals() -> int:
    return SecurityEvent.objects.filter(event_type="oauth.request_object_refused",
                                        reason="invalid_request_object").count()


def _too_long(now: int) -> dict[str, dict[str, Any]]:
    return {
        "exp a month ahead": {"iat": now, "nbf": now, "exp": now + 30 * DAY},
        "exp two hours after iat": {"iat": now, "nbf": None, "exp": now + 7200},
        "exp two hours after nbf": {"iat": None, "nbf": now, "exp": now + 7200},
        "exp far ahead, no iat or nbf": {"iat": None, "nbf": None, "exp": now + DAY},
        "issued long ago, still valid": {"iat": now - 3000, "nbf": now - 3000, "exp": now + 1000},
    }


def test_a_request_object_living_too_long_is_refused_at_authorize(browser, keyed, pkce):
    client, key = keyed
    params = request_params(client.client_id, pkce)
    for name, claims in _too_long(int(time.time())).items():
        query = _authorize(browser, client, request_object(client.client_id, key, params, **claims))
        assert query["error"] == "invalid_request_object", (name, query)
        assert "at most 3600 seconds" in query["error_description"], (name, query)
    assert not AuthorizationCode.objects.exists() and _refusals() == len(_too_long(0))


def test_a_request_object_living_too_long_is_refused_at_par(keyed, pkce):
    client, key = keyed
    params = request_params(client.client_id, pkce)
    for name, claims in _too_long(int(time.time())).items():
        response = push({"client_id": client.client_id, "request": request_object(client.client_id, key, params,
                                                                                    **claims),
                         **authenticated(client.client_id, key)})
        assert response.status_code == 400 and response.json()["error"] == "invalid_request_object", name
    assert _refusals() == len(_too_long(0))
    assert not SecurityEvent.objects.filter(event_type="oauth.par_accepted").exists()


def test_a_request_object_within_its_lifetime_is_accepted(browser, keyed, pkce):
    client, key = keyed
    now = int(time.time())
    for claims in ({"iat": now, "nbf": now, "exp": now + 3500}, {"iat": None, "nbf": None, "exp": now + 600},
                   {"iat": now - 600, "nbf": now - 600, "exp": now + 2900}):
        params = request_params(client.client_id, pkce)
        query = _authorize(browser, client, request_object(client.client_id, key, params, **claims))
        assert "code" in query and query["state"] == params["state"], (claims, query)
    assert _refusals() == 0


def test_the_maximum_is_a_setting(browser, keyed, pkce, settings):
    settings.IDP_REQUEST_OBJECT_MAX_LIFETIME_SECONDS = 120
    client, key = keyed
    now = int(time.time())
    params = request_params(client.client_id, pkce)
    refused = _authorize(browser, client, request_object(client.client_id, key, params, exp=now + 300))
    assert refused["error"] == "invalid_request_object" and "at most 120 seconds" in refused["error_description"]
    accepted = _authorize(browser, client, request_object(client.client_id, key, params, exp=now + 100))
    assert "code" in accepted and AuthorizationCode.objects.count() == 1 and _refusals() == 1


def test_fapi_keeps_its_60_minutes_under_a_higher_setting(keyed, pkce, settings, db):
    settings.IDP_REQUEST_OBJECT_MAX_LIFETIME_SECONDS = 4 * 3600
    bank, bank_key = keyed_client("fapi-lifetime", profile="fapi2")
    client, key = keyed
    now = int(time.time())
    ninety_minutes: dict[str, Any] = {"iat": now, "nbf": now, "exp": now + 5400}

    def pushed(who: Any, with_key: Any) -> Any:
        signed = request_object(who.client_id, with_key, request_params(who.client_id, pkce), **ninety_minutes)
        return push({"client_id": who.client_id, "request": signed, **authenticated(who.client_id, with_key)})

    assert pushed(bank, bank_key).json()["error"] == "invalid_request_object"
    assert pushed(client, key).status_code == 201
