"""A 500 found by the Schemathesis run (an odd ``resource`` echoed into error_description),
fixed since. Its place is beside the authorize parameter tests (idp/tests/test_authorize_params.py);
the Basic NUL finding lives in idp/tests/test_client_auth.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client as HttpClient

from idp.tests.conftest import SERVICE_REDIRECT, service_client  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("resource", ["é", 'https://x.example/"', "https://x.example/\\", "\x01"])
def test_authorize_with_an_unregistered_odd_resource_is_an_error_redirect(resource: str, service_client: Any) -> None:
    query = urlencode({"response_type": "code", "client_id": service_client.client.client_id,
                       "redirect_uri": SERVICE_REDIRECT, "code_challenge": "a" * 43, "code_challenge_method": "S256",
                       "resource": resource})
    response = HttpClient(raise_request_exception=False).get(f"/authorize?{query}")
    assert response.status_code == 302
    assert "error=invalid_target" in response["Location"]
