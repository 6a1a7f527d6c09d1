"""Property-based: random forms at ``/par`` (RFC 9126 §2) from a real public client never give a
5xx; every answer is JSON: 201 with a request_uri, or an RFC 6749 §5.2 error, never a redirect."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import authorize_params
from .jar_support import push

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_rate_in_reach(settings):
    """Every example pushes from one address: the rate (test_request_rates.py) stays out of
    the way of what is fuzzed here, the validation."""
    settings.IDP_PAR_RATE = settings.IDP_PAR_ADDRESS_RATE = "100000/min"

ODD = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["", "a.b.c", "e30.e30.", "eyJhbGciOiJub25lIn0.e30.", "urn:ietf:params:oauth:request_uri:x",
                     "https://rp.example/r", "²", "S256", "plain", "code", "token", "none", "-1", "A" * 43, "%00"]),
)
FORM = st.dictionaries(
    st.sampled_from(["request", "request_uri", "response_type", "redirect_uri", "scope", "code_challenge",
                     "code_challenge_method", "prompt", "max_age", "resource", "dpop_jkt", "client_assertion",
                     "client_assertion_type", "client_secret", "nonce", "response_mode"]),
    ODD, max_size=6,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=FORM)
def test_random_pushed_forms_never_500(extra, mobile_client, pkce):
    data = authorize_params(mobile_client.client.client_id, pkce)
    data.update({k: v.replace("\x00", "") for k, v in extra.items()})
    response = push(data)
    assert response.status_code in (201, 400, 401), (response.status_code, response.content[:300])
    assert "Location" not in response
    body = response.json()
    assert ("request_uri" in body) if response.status_code == 201 else body["error"]
