"""Query budgets on the hot paths (mobile fleets refresh every few minutes)."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from idp import keys

from .conftest import form_post
from .test_token import basic

pytestmark = pytest.mark.django_db


def test_refresh_query_budget(tokens, mobile_client, django_assert_max_num_queries):
    keys.ensure_keys()
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": mobile_client.client.client_id}
    with django_assert_max_num_queries(16):
        response = form_post(HttpClient(), reverse("token"), data)
    assert response.status_code == 200


def test_introspection_query_budget(tokens, service_client, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):
        response = form_post(HttpClient(), reverse("introspect"), {"token": tokens["access_token"]},
                             HTTP_AUTHORIZATION=basic(service_client.client.client_id, service_client.secret))
    assert response.json()["active"] is True


def test_jwks_query_budget(django_assert_max_num_queries):
    keys.ensure_keys()
    with django_assert_max_num_queries(4):
        assert HttpClient().get(reverse("jwks")).status_code == 200
