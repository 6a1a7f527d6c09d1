"""Token endpoint: RFC 6749 §4.1.3, §5, §6; RFC 7636 §4.6; RFC 9068; OIDC Core §3.1.3."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from core import jwt_tokens
from core.models import SecurityEvent
from sessions.models import DeviceSession, RefreshToken, SessionStatus

from .conftest import exchange, form_post, get_code, make_pkce

pytestmark = pytest.mark.django_db


def refresh(refresh_token: str, client_id: str, **extra: Any) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    data.update(extra)
    return form_post(HttpClient(), reverse("token"), data)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_code_exchange_returns_rfc9068_access_token_and_id_token(tokens, mobile_client, user, settings):
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 300
    access = jwt_tokens.verify(tokens["access_token"], typ="at+jwt")
    assert access["sub"] == user.get_user_id() and access["client_id"] == mobile_client.client.client_id
    assert access["iss"] == settings.IDP_ISSUER and access["exp"] - access["iat"] == 300
    assert set(access["scope"].split()) == {"openid", "profile", "email", "offline_access"}
    idt = jwt_tokens.verify(tokens["id_token"])
    assert idt["aud"] == mobile_client.client.client_id
    assert idt["nonce"] == tokens["_params"]["nonce"]
    assert idt["at_hash"] == jwt_tokens.half_hash(tokens["access_token"], "ES256")
    assert idt["amr"] == ["pwd"] and idt["acr"] == "urn:vigil:acr:password"
    assert idt["sid"] == access["sid"] and abs(idt["auth_time"] - time.time()) < 60
    assert idt["email"] == "alice@example.com" and idt["email_verified"] is True


def test_tokens_are_not_cached(browser, mobile_client, pkce):
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    response = exchange(HttpClient(), code, pkce, mobile_client.client.client_id)
    assert response["Cache-Control"] == "no-store"


def test_refresh_token_stored_only_as_hash(tokens):
    assert not RefreshToken.objects.filter(token_hash=tokens["refresh_token"].encode()).exists()
    assert RefreshToken.objects.count() == 1


def test_wrong_pkce_verifier_is_invalid_grant(browser, mobile_client, pkce):
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    response = exchange(HttpClient(), code, make_pkce(), mobile_client.client.client_id)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.count() == 0


def test_missing_pkce_verifier_is_invalid_request(browser, mobile_client, pkce):
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    response = exchange(HttpClient(), code, pkce, mobile_client.client.client_id, code_verifier=None)
    assert response.json()["error"] == "invalid_request"


def test_wrong_redirect_uri_at_token_endpoint(browser, mobile_client, pkce):
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    response = exchange(HttpClient(), code, pkce, mobile_client.client.client_id, redirect_uri="http://127.0.0.1/callback")
    assert response.json()["error"] == "invalid_grant"


def test_code_reuse_is_refused_and_revokes_first_tokens(browser, mobile_client, pkce):
    """RFC 6749 §4.1.2. Once the family's chain moved on (its first refresh token used), a
    second exchange cannot be the retry of a lost answer (test_code_exchange_retry.py)."""
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    first = exchange(HttpClient(), code, pkce, mobile_client.client.client_id).json()
    successor = refresh(first["refresh_token"], mobile_client.client.client_id).json()["refresh_token"]
    second = exchange(HttpClient(), code, pkce, mobile_client.client.client_id)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert refresh(successor, mobile_client.client.client_id).json()["error"] == "invalid_grant"
    assert SecurityEvent.objects.filter(event_type="oauth.code_reuse").exists()


def test_code_of_another_client_is_invalid_grant(browser, mobile_client, pkce, db):
    from clients.flows.registration import register_client

    other = register_client(name="Other", public=True, redirect_uris=["com.example.other:/cb"]).client
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    response = exchange(HttpClient(), code, pkce, other.client_id, redirect_uri="com.example.other:/cb")
    assert response.json()["error"] == "invalid_grant"


def test_expired_code_is_invalid_grant(browser, mobile_client, pkce, time_machine):
    import datetime as dt

    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    time_machine.move_to(dt.datetime.now(tz=dt.UTC) + dt.timedelta(seconds=61))
    assert exchange(HttpClient(), code, pkce, mobile_client.client.client_id).json()["error"] == "invalid_grant"


def test_refresh_rotates_and_reuse_revokes_family(tokens, mobile_client):
    client_id = mobile_client.client.client_id
    rotated = refresh(tokens["refresh_token"], client_id)
    assert rotated.status_code == 200, rotated.content
    body = rotated.json()
    assert body["refresh_token"] != tokens["refresh_token"]
    assert jwt_tokens.verify(body["id_token"])["sid"] == jwt_tokens.verify(tokens["id_token"])["sid"]
    latest = refresh(body["refresh_token"], client_id).json()["refresh_token"]  # the chain moves on
    reuse = refresh(tokens["refresh_token"], client_id)
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert refresh(latest, client_id).json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert SecurityEvent.objects.filter(event_type="session.revoked", reason="refresh_token_reuse").exists()


def test_without_a_grace_window_any_second_presentation_is_reuse(tokens, mobile_client, settings):
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 0
    client_id = mobile_client.client.client_id
    successor = refresh(tokens["refresh_token"], client_id).json()["refresh_token"]
    assert refresh(tokens["refresh_token"], client_id).json()["error"] == "invalid_grant"
    assert refresh(successor, client_id).json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_refresh_grace_window_for_lost_response(tokens, mobile_client, settings):
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 30
    client_id = mobile_client.client.client_id
    lost = refresh(tokens["refresh_token"], client_id).json()
    retried = refresh(tokens["refresh_token"], client_id)
    assert retried.status_code == 200
    assert retried.json()["refresh_token"] == lost["refresh_token"]  # the same successor, not a second one
    assert retried.json()["access_token"] != lost["access_token"]
    assert refresh(lost["refresh_token"], client_id).status_code == 200
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE


def test_refresh_scope_can_narrow_not_widen(tokens, mobile_client):
    client_id = mobile_client.client.client_id
    narrowed = refresh(tokens["refresh_token"], client_id, scope="openid").json()
    assert jwt_tokens.verify(narrowed["access_token"], typ="at+jwt")["scope"] == "openid"
    widened = refresh(narrowed["refresh_token"], client_id, scope="openid orders.write")
    assert widened.json()["error"] == "invalid_scope"


def test_refresh_by_another_client_is_invalid_grant(tokens, service_client):
    response = form_post(
        HttpClient(),
        reverse("token"),
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        HTTP_AUTHORIZATION=basic(service_client.client.client_id, service_client.secret),
    )
    assert response.json()["error"] == "invalid_grant"


def test_expired_refresh_token(tokens, mobile_client, time_machine):
    import datetime as dt

    time_machine.move_to(dt.datetime.now(tz=dt.UTC) + dt.timedelta(days=31))
    assert refresh(tokens["refresh_token"], mobile_client.client.client_id).json()["error"] == "invalid_grant"


def test_client_credentials_with_basic_and_post(service_client):
    client_id, secret = service_client.client.client_id, service_client.secret
    response = form_post(
        HttpClient(), reverse("token"), {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(client_id, secret)
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert "refresh_token" not in body and body["scope"] == "orders.read"
    claims = jwt_tokens.verify(body["access_token"], typ="at+jwt")
    assert claims["sub"] == client_id
    assert service_client.client.secret_hash != secret
    posted = form_post(
        HttpClient(),
        reverse("token"),
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    # Registered for a secret without naming a method: both ways (idp/tests/test_client_auth.py).
    assert posted.status_code == 200, posted.content


def test_wrong_client_secret_is_invalid_client_401(service_client):
    response = form_post(
        HttpClient(),
        reverse("token"),
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(service_client.client.client_id, "wrong"),
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_public_client_cannot_use_client_credentials(mobile_client):
    response = form_post(HttpClient(), reverse("token"), {"grant_type": "client_credentials", "client_id": mobile_client.client.client_id})
    assert response.json()["error"] in {"unauthorized_client", "invalid_client"}


def test_private_key_jwt_client_authentication(db):
    import uuid

    from joserfc import jwt as jose_jwt
    from joserfc.jwk import ECKey

    from clients.flows.registration import register_client

    key = ECKey.generate_key("P-256", private=True)
    public = key.as_dict(private=False) | {"kid": "k1", "use": "sig", "alg": "ES256"}
    client = register_client(
        name="JWT service", public=False, redirect_uris=[], grant_types=["client_credentials"],
        scopes=["orders.read"], auth_methods=["private_key_jwt"], jwks={"keys": [public]},
    ).client
    from django.conf import settings

    now = int(time.time())
    claims = {"iss": client.client_id, "sub": client.client_id, "aud": f"{settings.IDP_ISSUER}/token",
              "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
    assertion = jose_jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key, algorithms=["ES256"])
    data = {"grant_type": "client_credentials", "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion}
    ok = form_post(HttpClient(), reverse("token"), data)
    assert ok.status_code == 200, ok.content
    replay = form_post(HttpClient(), reverse("token"), data)
    assert replay.json()["error"] == "invalid_client"
    other = ECKey.generate_key("P-256", private=True)
    claims["jti"] = str(uuid.uuid4())
    forged = jose_jwt.encode({"alg": "ES256", "kid": "k1"}, claims, other, algorithms=["ES256"])
    assert form_post(HttpClient(), reverse("token"), dict(data, client_assertion=forged)).json()["error"] == "invalid_client"


def test_unsupported_grant_type(mobile_client):
    response = form_post(HttpClient(), reverse("token"), {"grant_type": "password", "client_id": mobile_client.client.client_id})
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


def test_a_token_request_without_grant_type_is_invalid_request(mobile_client):
    response = form_post(HttpClient(), reverse("token"), {"client_id": mobile_client.client.client_id})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert "grant_type" in response.json()["error_description"]


@pytest.mark.parametrize("name", ["code", "code_verifier", "grant_type", "redirect_uri", "scope"])
def test_a_repeated_token_parameter_is_invalid_request_and_the_code_stays_usable(browser, mobile_client, pkce, name):
    """RFC 6749 §3.2: parameters MUST NOT be included more than once (Authlib took the last)."""
    from urllib.parse import urlencode

    from .conftest import MOBILE_REDIRECT

    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": MOBILE_REDIRECT,
            "client_id": mobile_client.client.client_id, "code_verifier": pkce.verifier, "scope": "openid"}
    pairs = [*data.items(), (name, data[name])]
    response = HttpClient().post(reverse("token"), urlencode(pairs), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert f"The {name} parameter is repeated" in response.json()["error_description"]
    assert not DeviceSession.objects.exists()
    assert exchange(HttpClient(), code, pkce, mobile_client.client.client_id).status_code == 200


def test_token_endpoint_rejects_get_and_json():
    http = HttpClient()
    assert http.get(reverse("token")).status_code == 405
    response = http.post(reverse("token"), data='{"grant_type":"x"}', content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
def test_per_client_signing_algorithm(browser, mobile_client, pkce, alg):
    import jwt as pyjwt

    from core import keys

    mobile_client.client.signing_alg = alg
    mobile_client.client.save()
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    body = exchange(HttpClient(), code, pkce, mobile_client.client.client_id).json()
    for token in (body["id_token"], body["access_token"]):
        header = pyjwt.get_unverified_header(token)
        assert header["alg"] == alg
        jwk = next(k for k in keys.jwks()["keys"] if k["kid"] == header["kid"])
        key = pyjwt.PyJWK(jwk).key
        claims = pyjwt.decode(token, key, algorithms=[alg], audience=mobile_client.client.client_id)
        assert claims["iss"]
    assert jwt_tokens.verify(body["id_token"])["at_hash"] == jwt_tokens.half_hash(body["access_token"], alg)


def test_resource_narrowing_on_refresh(browser, mobile_client, pkce):
    code, _ = get_code(browser, mobile_client.client.client_id, pkce, resource="https://api.example.com")
    body = exchange(HttpClient(), code, pkce, mobile_client.client.client_id).json()
    assert jwt_tokens.verify(body["access_token"], typ="at+jwt")["aud"] == "https://api.example.com"
    wider = refresh(body["refresh_token"], mobile_client.client.client_id, resource="https://other.example.com")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_target"
    same = refresh(body["refresh_token"], mobile_client.client.client_id, resource="https://api.example.com").json()
    assert jwt_tokens.verify(same["access_token"], typ="at+jwt")["aud"] == "https://api.example.com"


def test_refresh_without_resource_grant_cannot_add_one(tokens, mobile_client):
    response = refresh(tokens["refresh_token"], mobile_client.client.client_id, resource="https://api.example.com")
    assert response.json()["error"] == "invalid_target"


def test_deactivating_a_user_ends_sessions_at_once(tokens, user, service_client, mobile_client):
    from .test_introspection_revocation_userinfo import introspect

    user.is_active = False
    user.save()
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert introspect(service_client, tokens["access_token"]).json() == {"active": False}
    assert refresh(tokens["refresh_token"], mobile_client.client.client_id).json()["error"] == "invalid_grant"
