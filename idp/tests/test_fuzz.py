"""Property-based: random form bodies and headers never make the protocol endpoints fail
with a 5xx, and errors are RFC 6749 §5.2 JSON bodies."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.django_db

FIELDS = ["grant_type", "code", "redirect_uri", "client_id", "client_secret", "code_verifier", "refresh_token",
          "scope", "token", "token_type_hint", "client_assertion", "client_assertion_type", "resource"]
VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["authorization_code", "refresh_token", "client_credentials", "access_token",
                     "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "a.b.c", "", "\x00", "%00", "é" * 10]),
)
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), VALUES, max_size=8)
headers = st.dictionaries(
    st.sampled_from(["HTTP_AUTHORIZATION", "HTTP_DPOP", "HTTP_X_FORWARDED_FOR", "HTTP_CONTENT_LANGUAGE"]),
    st.one_of(st.text(max_size=60), st.sampled_from(["Basic Og==", "Basic !!!", "Basic " + "QTpC", "Bearer x", "DPoP a.b.c"])),
    max_size=3,
)


def _post(path: str, body: dict, extra: dict):
    from urllib.parse import urlencode

    encoded = urlencode(list(body.items()))
    safe_headers = {k: v.encode("latin-1", "ignore").decode("latin-1").replace("\n", "").replace("\r", "") for k, v in extra.items()}
    return HttpClient().post(path, data=encoded, content_type="application/x-www-form-urlencoded", **safe_headers)


@pytest.mark.parametrize("name", ["token", "introspect", "revoke"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, extra=headers)
def test_random_requests_get_protocol_errors_not_500(name, body, extra, mobile_client, service_client):
    response = _post(reverse(name), body, extra)
    assert response.status_code < 500
    if response.status_code >= 400:
        payload = response.json()
        assert isinstance(payload.get("error"), str) and payload["error"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(["response_type", "client_id", "redirect_uri", "scope", "state", "prompt",
                                               "max_age", "code_challenge", "code_challenge_method", "nonce", "resource",
                                               "acr_values"]), VALUES, max_size=8))
def test_random_authorization_requests_never_500(params, mobile_client, browser):
    from urllib.parse import urlencode

    response = browser.get(f"{reverse('authorize')}?{urlencode(params)}")
    assert response.status_code in (200, 302, 400)
