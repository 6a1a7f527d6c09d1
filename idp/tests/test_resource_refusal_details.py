"""Every refusal at our resource endpoints records why (``detail``, an
``idp.flows.resource.Refusal``), which ``vigil_resource_token_refusals_total`` counts by:
the ones not driven elsewhere (ops/tests/test_flow_metrics.py drives no token, another scheme,
two tokens, an unverifiable, expired, revoked and narrowed token; test_dpop_endpoints.py the
RFC 9449 ones). A client's own token at /userinfo (no user) is recorded too."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient
from django.test import RequestFactory
from django.urls import reverse

from clients.flows.registration import RegisteredClient
from core import policy
from core.events import EventType
from core.models import SecurityEvent
from core.resource_errors import ResourceError, ResourceErrorCode
from idp.flows import resource
from sessions.models import AccessToken

from .conftest import MOBILE_CLIENT_ID, Pkce, exchange, get_code

pytestmark = pytest.mark.django_db


def last_refusal() -> tuple[str, str]:
    event = SecurityEvent.objects.filter(event_type=EventType.RESOURCE_TOKEN_REFUSED).latest("pk")
    return event.reason, event.details["detail"]


def userinfo(access_token: str) -> Any:
    return HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {access_token}")


def test_a_token_without_openid_is_insufficient_scope(browser: HttpClient, mobile_client: RegisteredClient,
                                                      pkce: Pkce) -> None:
    code, _ = get_code(browser, MOBILE_CLIENT_ID, pkce, scope="profile")
    token = exchange(HttpClient(), code, pkce, MOBILE_CLIENT_ID).json()["access_token"]
    response = userinfo(token)
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"
    assert last_refusal() == ("insufficient_scope", resource.Refusal.INSUFFICIENT_SCOPE)


def test_a_resource_policys_refusal_is_policy(tokens: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Risk and device health refuse through ``core.policy``; a stand-in policy does here."""
    def refuse(context: policy.ResourceContext) -> None:
        raise ResourceError(ResourceErrorCode.INVALID_TOKEN, "The device no longer meets the policy.")

    monkeypatch.setattr(policy, "_resource_policies", [refuse])
    response = userinfo(tokens["access_token"])
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    assert last_refusal() == ("invalid_token", resource.Refusal.POLICY)
    event = SecurityEvent.objects.filter(event_type=EventType.RESOURCE_TOKEN_REFUSED).latest("pk")
    assert event.details["description"] == "The device no longer meets the policy."


def test_a_token_without_a_user_is_refused_on_record(service_client: RegisteredClient) -> None:
    """A client's own token (client credentials: never ``openid``, so /userinfo refuses it for
    its scope first) where a user's is needed: ``invalid_token``, recorded ``no_user``."""
    token = AccessToken(client=service_client.client, user=None, scope="openid")
    request = RequestFactory().get("/userinfo")
    with pytest.raises(ResourceError) as refused:
        resource.require_user(request, resource.AuthorizedRequest(claims={"scope": "openid"}, token=token))
    assert (refused.value.error, refused.value.scheme) == ("invalid_token", "Bearer")
    assert last_refusal() == ("invalid_token", resource.Refusal.NO_USER)
