"""RFC 9449 at our endpoints: DPoP-bound access tokens (cnf.jkt, token_type DPoP), bound
refresh tokens for public clients, DPoP at userinfo and introspection."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.urls import reverse
from joserfc.jwk import ECKey

from core import jwt_tokens
from sessions.dpop import thumbprint
from sessions.dpop.client import create_proof
from sessions.models import DeviceSession

from .conftest import exchange, form_post, get_code
from .test_introspection_revocation_userinfo import introspect

pytestmark = pytest.mark.django_db


def token_url() -> str:
    return f"{settings.IDP_ISSUER}/token"


@pytest.fixture
def dpop_key() -> ECKey:
    return ECKey.generate_key("P-256", private=True)


@pytest.fixture
def dpop_tokens(browser, mobile_client, pkce, dpop_key):
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    proof = create_proof(dpop_key, method="POST", url=token_url())
    response = exchange(HttpClient(), code, pkce, mobile_client.client.client_id, HTTP_DPOP=proof)
    assert response.status_code == 200, response.content
    assert response["DPoP-Nonce"]
    return response.json()


def _refresh(mobile_client, refresh_token, **headers):
    return form_post(
        HttpClient(), reverse("token"),
        {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": mobile_client.client.client_id},
        **headers,
    )


def test_dpop_bound_access_token(dpop_tokens, dpop_key):
    assert dpop_tokens["token_type"] == "DPoP"
    claims = jwt_tokens.verify(dpop_tokens["access_token"], typ="at+jwt")
    assert claims["cnf"] == {"jkt": thumbprint(dpop_key.as_dict(private=False))}
    assert DeviceSession.objects.get().dpop_jkt == claims["cnf"]["jkt"]


def test_bound_refresh_needs_proof_by_the_same_key(dpop_tokens, dpop_key, mobile_client):
    rt = dpop_tokens["refresh_token"]
    no_proof = _refresh(mobile_client, rt)
    assert no_proof.status_code == 400 and no_proof.json()["error"] == "invalid_dpop_proof"
    other = ECKey.generate_key("P-256", private=True)
    wrong_key = _refresh(mobile_client, rt, HTTP_DPOP=create_proof(other, method="POST", url=token_url()))
    assert wrong_key.json()["error"] == "invalid_dpop_proof"
    ok = _refresh(mobile_client, rt, HTTP_DPOP=create_proof(dpop_key, method="POST", url=token_url()))
    assert ok.status_code == 200, ok.content  # the failed attempts did not burn the token
    assert ok.json()["token_type"] == "DPoP"


def test_replayed_proof_is_refused(browser, mobile_client, pkce, dpop_key):
    proof = create_proof(dpop_key, method="POST", url=token_url())
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    assert exchange(HttpClient(), code, pkce, mobile_client.client.client_id, HTTP_DPOP=proof).status_code == 200
    code2, _ = get_code(browser, mobile_client.client.client_id, pkce, nonce="second")
    again = exchange(HttpClient(), code2, pkce, mobile_client.client.client_id, HTTP_DPOP=proof)
    assert again.json()["error"] == "invalid_dpop_proof"


def test_required_nonce_round_trip(browser, mobile_client, pkce, dpop_key, settings):
    settings.SESSIONS_DPOP_NONCE_REQUIRED = True
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    first = exchange(HttpClient(), code, pkce, mobile_client.client.client_id,
                     HTTP_DPOP=create_proof(dpop_key, method="POST", url=token_url()))
    assert first.json()["error"] == "use_dpop_nonce"
    nonce = first["DPoP-Nonce"]
    second = exchange(HttpClient(), code, pkce, mobile_client.client.client_id,
                      HTTP_DPOP=create_proof(dpop_key, method="POST", url=token_url(), nonce=nonce))
    assert second.status_code == 200, second.content


def test_client_requiring_dpop_refuses_bearer(browser, mobile_client, pkce):
    mobile_client.client.require_dpop = True
    mobile_client.client.save()
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    response = exchange(HttpClient(), code, pkce, mobile_client.client.client_id)
    assert response.json()["error"] == "invalid_dpop_proof"


def test_userinfo_with_dpop_bound_token(dpop_tokens, dpop_key):
    at = dpop_tokens["access_token"]
    url = f"{settings.IDP_ISSUER}{reverse('userinfo')}"
    http = HttpClient()
    as_bearer = http.get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {at}")
    assert as_bearer.status_code == 401 and as_bearer["WWW-Authenticate"].startswith("DPoP")
    ok = http.get(reverse("userinfo"), HTTP_AUTHORIZATION=f"DPoP {at}",
                  HTTP_DPOP=create_proof(dpop_key, method="GET", url=url, access_token=at))
    assert ok.status_code == 200, ok.content
    other = ECKey.generate_key("P-256", private=True)
    stolen = http.get(reverse("userinfo"), HTTP_AUTHORIZATION=f"DPoP {at}",
                      HTTP_DPOP=create_proof(other, method="GET", url=url, access_token=at))
    assert stolen.status_code == 401
    no_ath = http.get(reverse("userinfo"), HTTP_AUTHORIZATION=f"DPoP {at}",
                      HTTP_DPOP=create_proof(dpop_key, method="GET", url=url))
    assert no_ath.status_code == 401


def test_introspection_reports_dpop_binding(dpop_tokens, service_client, dpop_key):
    body = introspect(service_client, dpop_tokens["access_token"]).json()
    assert body["token_type"] == "DPoP" and body["cnf"]["jkt"] == thumbprint(dpop_key.as_dict(private=False))


def test_discovery_advertises_dpop_algs():
    assert "ES256" in HttpClient().get("/.well-known/openid-configuration").json()["dpop_signing_alg_values_supported"]


def test_userinfo_demanding_a_nonce_says_which_one(dpop_tokens, dpop_key, settings):
    settings.SESSIONS_DPOP_NONCE_REQUIRED = True
    at = dpop_tokens["access_token"]
    url = f"{settings.IDP_ISSUER}{reverse('userinfo')}"
    http = HttpClient()
    first = http.get(reverse("userinfo"), HTTP_AUTHORIZATION=f"DPoP {at}",
                     HTTP_DPOP=create_proof(dpop_key, method="GET", url=url, access_token=at))
    assert first.status_code == 401 and first.json()["error"] == "use_dpop_nonce"
    nonce = first["DPoP-Nonce"]
    second = http.get(reverse("userinfo"), HTTP_AUTHORIZATION=f"DPoP {at}",
                      HTTP_DPOP=create_proof(dpop_key, method="GET", url=url, access_token=at, nonce=nonce))
    assert second.status_code == 200, second.content


def test_each_dpop_refusal_at_userinfo_is_a_security_event(dpop_tokens, dpop_key, settings):
    """Every refusal at userinfo is a ``resource.token_refused`` event, the RFC 9449 §7 ones
    too, each with why (``detail``: what the refusals metric counts by): a bound token sent as
    Bearer, a proof by another key (a stolen token), no proof, a proof without the nonce
    demanded."""
    from core.models import SecurityEvent

    at = dpop_tokens["access_token"]
    url = f"{settings.IDP_ISSUER}{reverse('userinfo')}"
    other = ECKey.generate_key("P-256", private=True)
    proof = create_proof(dpop_key, method="GET", url=url, access_token=at)  # good, but without a nonce
    attempts: list[tuple[str, dict[str, Any], bool]] = [
        ("wrong_scheme", {"HTTP_AUTHORIZATION": f"Bearer {at}"}, False),
        ("dpop_proof_invalid", {"HTTP_AUTHORIZATION": f"DPoP {at}",
                                "HTTP_DPOP": create_proof(other, method="GET", url=url, access_token=at)}, False),
        ("dpop_proof_invalid", {"HTTP_AUTHORIZATION": f"DPoP {at}"}, False),
        ("dpop_nonce_required", {"HTTP_AUTHORIZATION": f"DPoP {at}", "HTTP_DPOP": proof}, True),
    ]
    for name, headers, nonce_required in attempts:
        settings.SESSIONS_DPOP_NONCE_REQUIRED = nonce_required
        before = SecurityEvent.objects.filter(event_type="resource.token_refused").count()
        response = HttpClient().get(reverse("userinfo"), **headers)
        assert response.status_code == 401, name
        refused = SecurityEvent.objects.filter(event_type="resource.token_refused").order_by("-pk")
        latest = refused.first()
        assert refused.count() == before + 1 and latest is not None, name
        assert (latest.reason, latest.outcome) == (response.json()["error"], "denied"), name
        assert latest.details["detail"] == name
