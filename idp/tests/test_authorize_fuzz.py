"""Property-based: a valid client and redirect URI with random values for the parameters
Vigil parses itself (``prompt``, ``max_age``, ``response_mode``, ``dpop_jkt``, request
objects, ``acr_values``) never give a 5xx, and every answer goes only to the registered URI:
a 302 there, a form_post page posting there, a login redirect, or a page of ours."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import MOBILE_REDIRECT, authorize_params

pytestmark = pytest.mark.django_db

ODD = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["", "²", "٣", "0", "-1", "2147483648", "1" * 30, "none", "login", "consent", "select_account",
                     "none select_account", "query", "fragment", "form_post", "jwt", "A" * 43, "\x00", "%00"]),
)
PARAMS = st.dictionaries(
    st.sampled_from(["prompt", "max_age", "response_mode", "dpop_jkt", "request", "request_uri", "acr_values", "login_hint"]),
    ODD, max_size=5,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=PARAMS, redirect=st.sampled_from([MOBILE_REDIRECT, "http://127.0.0.1:4321/callback"]))
def test_random_parameters_never_500_and_answer_only_the_registered_uri(extra, redirect, browser, mobile_client, pkce):
    params = authorize_params(mobile_client.client.client_id, pkce, redirect_uri=redirect)
    params.update({k: v.replace("\x00", "") for k, v in extra.items()})
    response = browser.get(f"{reverse('authorize')}?{urlencode(params)}")
    assert response.status_code in (200, 302, 400), response.status_code
    if response.status_code == 302:
        location = response["Location"]
        assert location.startswith((redirect + "?", redirect + "#", reverse("accounts:login"))), location
    elif response.status_code == 200 and b"vigil-form-post" in response.content:
        found = re.search(rb'<form id="vigil-form-post" method="post" action="([^"]*)"', response.content)
        assert found is not None
        action = found.group(1)
        assert unescape(action.decode()) == redirect
