"""Reproductions of 500s found by the Schemathesis and header property runs (an odd
``resource`` echoed into error_description; a NUL in a Basic client id), fixed since."""

from __future__ import annotations

import base64
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


@pytest.mark.postgres
@pytest.mark.parametrize("raw", [b"a\x00b:secret", b"\x00:x"])
def test_basic_client_id_with_nul_is_invalid_client(raw: bytes, service_client: Any) -> None:
    response = HttpClient(raise_request_exception=False).post(
        "/token", data="grant_type=client_credentials", content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(raw).decode())
    assert response.status_code in (400, 401)
    assert response.json()["error"] in {"invalid_client", "invalid_request"}
