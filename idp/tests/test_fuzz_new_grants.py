"""Property-based: random requests of the device grant (RFC 8628) and token exchange
(RFC 8693) never make an endpoint fail with a 5xx; errors are RFC 6749 §5.2 JSON bodies (or
the device page's HTML), and nothing is issued."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clients.flows.registration import register_client
from idp.oauth.grants.device_code import DEVICE_CODE
from idp.oauth.grants.token_exchange import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE
from sessions.models import AccessToken

from .test_fuzz import _post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_rate_in_reach(settings: Any) -> None:
    """Every example comes from one address: the device authorization rate
    (test_request_rates.py) stays out of the way of what is fuzzed here."""
    settings.IDP_DEVICE_AUTHORIZATION_RATE = settings.IDP_DEVICE_AUTHORIZATION_ADDRESS_RATE = "100000/min"

FIELDS = ["grant_type", "client_id", "client_secret", "scope", "resource", "audience", "device_code",
          "subject_token", "subject_token_type", "actor_token", "actor_token_type", "requested_token_type"]
VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from([DEVICE_CODE, TOKEN_EXCHANGE, ACCESS_TOKEN_TYPE, "tv-fuzz", "backend-fuzz", "a.b.c",
                     "eyJhbGciOiJub25lIn0.e30.", "https://orders.example.com", "", "\x00", "%00", "é" * 10]),
)
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), VALUES, max_size=8)
headers = st.dictionaries(
    st.sampled_from(["HTTP_AUTHORIZATION", "HTTP_DPOP"]),
    st.one_of(st.text(max_size=60), st.sampled_from(["Basic Og==", "Basic YmFja2VuZC1mdXp6Ong=", "DPoP a.b.c"])),
    max_size=2,
)


@pytest.fixture
def fuzz_clients(db: Any) -> None:
    register_client(name="TV", public=True, redirect_uris=[], client_id="tv-fuzz", grant_types=[DEVICE_CODE])
    register_client(name="Backend", public=False, redirect_uris=[], client_id="backend-fuzz",
                    grant_types=[TOKEN_EXCHANGE], token_exchange_audiences=["https://orders.example.com"])


@pytest.mark.parametrize("name", ["token", "device-authorization"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, extra=headers)
def test_random_requests_get_protocol_errors_not_500(name: str, body: dict, extra: dict, fuzz_clients: None) -> None:
    response = _post(reverse(name), body, extra)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert isinstance(response.json().get("error"), str)
    assert not AccessToken.objects.exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.dictionaries(st.sampled_from(["user_code", "decision", "csrfmiddlewaretoken"]), VALUES, max_size=3))
def test_random_device_page_answers_never_500(form: dict, browser: Any, fuzz_clients: None) -> None:
    response = browser.post(reverse("device"), form)
    assert response.status_code in (200, 302, 400, 403, 429)
    assert browser.get(reverse("device"), {k: v for k, v in form.items() if k == "user_code"}).status_code in (
        200, 302, 400, 429)
