"""RFC 9449 §10: ``dpop_jkt`` at the authorization endpoint binds the code to a DPoP key;
the exchange needs a proof of that key. A refused exchange leaves the code unused, so a
thief trying their own key cannot burn it (the RFC says only "reject")."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from joserfc.jwk import ECKey

from core import jwt_tokens
from core.models import SecurityEvent
from sessions.dpop import thumbprint
from sessions.dpop.client import create_proof
from sessions.models import AuthorizationCode, DeviceSession

from .conftest import authorize_params, exchange, get_code, query_of

pytestmark = pytest.mark.django_db


def _proof(key: ECKey) -> str:
    return create_proof(key, method="POST", url=f"{settings.IDP_ISSUER}/token")


def _jkt(key: ECKey) -> str:
    return thumbprint(key.as_dict(private=False))


@pytest.fixture
def k1() -> ECKey:
    return ECKey.generate_key("P-256", private=True)


@pytest.fixture
def k2() -> ECKey:
    return ECKey.generate_key("P-256", private=True)


def test_code_stores_dpop_jkt(browser, mobile_client, pkce, k2):
    get_code(browser, mobile_client.client.client_id, pkce, dpop_jkt=_jkt(k2))
    assert AuthorizationCode.objects.get().dpop_jkt == _jkt(k2)


def test_code_for_k2_refused_with_proof_of_k1_then_k2_succeeds(browser, mobile_client, pkce, k1, k2):
    code, _ = get_code(browser, mobile_client.client.client_id, pkce, dpop_jkt=_jkt(k2))
    wrong = exchange(HttpClient(), code, pkce, mobile_client.client.client_id, HTTP_DPOP=_proof(k1))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant", wrong.content
    assert "access_token" not in wrong.json()
    assert AuthorizationCode.objects.get().used_at is None and not DeviceSession.objects.exists()
    assert SecurityEvent.objects.filter(event_type="dpop.refused", reason="dpop_jkt_mismatch").exists()
    right = exchange(HttpClient(), code, pkce, mobile_client.client.client_id, HTTP_DPOP=_proof(k2))
    assert right.status_code == 200, right.content
    body = right.json()
    assert body["token_type"] == "DPoP"
    assert jwt_tokens.verify(body["access_token"], typ="at+jwt")["cnf"] == {"jkt": _jkt(k2)}
    assert DeviceSession.objects.get().dpop_jkt == _jkt(k2)


def test_bound_code_without_a_proof_is_refused_and_stays_usable(browser, mobile_client, pkce, k2):
    code, _ = get_code(browser, mobile_client.client.client_id, pkce, dpop_jkt=_jkt(k2))
    bare = exchange(HttpClient(), code, pkce, mobile_client.client.client_id)
    assert bare.status_code == 400 and bare.json()["error"] == "invalid_grant"
    assert AuthorizationCode.objects.get().used_at is None and not DeviceSession.objects.exists()
    assert SecurityEvent.objects.filter(event_type="dpop.refused", reason="dpop_jkt_missing_proof").exists()
    assert exchange(HttpClient(), code, pkce, mobile_client.client.client_id, HTTP_DPOP=_proof(k2)).status_code == 200


def test_unbound_code_still_works_without_dpop(browser, mobile_client, pkce):
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    response = exchange(HttpClient(), code, pkce, mobile_client.client.client_id)
    assert response.status_code == 200 and response.json()["token_type"] == "Bearer"


@pytest.mark.parametrize("value", ["abc", "A" * 44, "A" * 42 + "=", "A" * 42 + "+", "é" * 43])
def test_malformed_dpop_jkt_is_invalid_request(browser, mobile_client, pkce, value):
    params = authorize_params(mobile_client.client.client_id, pkce, dpop_jkt=value)
    response = browser.get(f"{reverse('authorize')}?{urlencode(params)}")
    query = query_of(response["Location"])
    assert query["error"] == "invalid_request" and "dpop_jkt" in query["error_description"]
    assert not AuthorizationCode.objects.exists()


def test_the_binding_check_costs_no_query(browser, mobile_client, pkce, k1, k2):
    """The code row (with its user) is read by one statement whether or not it is bound; the
    dpop_jkt comparison reads that row, so a bound exchange costs what an unbound DPoP one does."""
    client_id = mobile_client.client.client_id

    def exchange_queries(**bind: str) -> int:
        code, _ = get_code(browser, client_id, pkce, **bind)
        with CaptureQueriesContext(connection) as queries:
            assert exchange(HttpClient(), code, pkce, client_id, HTTP_DPOP=_proof(k2)).status_code == 200
        return len(queries)

    exchange_queries(), exchange_queries()  # warm the per-process caches (client, keys, registered apps)
    bound = exchange_queries(dpop_jkt=_jkt(k2))
    assert bound <= exchange_queries()
