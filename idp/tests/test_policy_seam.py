"""The token-policy seam: policies narrow scopes and lifetimes, or refuse without loss."""

from __future__ import annotations

import pytest
from authlib.oauth2.rfc6749.errors import InvalidGrantError

from core import jwt_tokens, policy

from .test_token import refresh

pytestmark = pytest.mark.django_db


@pytest.fixture
def registered():
    added = []

    def add(fn):
        policy.register_token_policy(fn)
        added.append(fn)

    yield add
    for fn in added:
        policy._token_policies.remove(fn)


def test_policy_narrows_scope_and_lifetime(tokens, mobile_client, registered):
    seen = []

    def read_only(context):
        seen.append(context)
        return policy.PolicyDecision(scope="openid profile", access_token_lifetime=60, extra_claims={"vigil_restricted": True})

    registered(read_only)
    body = refresh(tokens["refresh_token"], mobile_client.client.client_id).json()
    claims = jwt_tokens.verify(body["access_token"], typ="at+jwt")
    assert claims["scope"] == "openid profile" and claims["exp"] - claims["iat"] == 60
    assert body["expires_in"] == 60 and body["scope"] == "openid profile" and claims["vigil_restricted"] is True
    assert seen[0].grant_type == "refresh_token" and seen[0].session is not None
    # the refresh token keeps the granted scope: the restriction is re-evaluated each time
    policy._token_policies.remove(read_only)
    again = refresh(body["refresh_token"], mobile_client.client.client_id).json()
    assert "email" in again["scope"].split()
    policy._token_policies.append(read_only)


def test_refusing_policy_loses_nothing(tokens, mobile_client, registered):
    def deny(context):
        raise InvalidGrantError("denied by policy")

    registered(deny)
    assert refresh(tokens["refresh_token"], mobile_client.client.client_id).json()["error"] == "invalid_grant"
    policy._token_policies.remove(deny)
    assert refresh(tokens["refresh_token"], mobile_client.client.client_id).status_code == 200
    policy._token_policies.append(deny)
