"""RFC 7662 introspection, RFC 7009 revocation, OIDC Core §5.3 userinfo."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from core.models import SecurityEvent
from sessions.models import DeviceSession, SessionStatus
from tests.written_elsewhere import elsewhere

from .conftest import form_post
from .test_token import basic, refresh

pytestmark = pytest.mark.django_db


def introspect(service_client, token: str, **extra):
    return form_post(
        HttpClient(),
        reverse("introspect"),
        {"token": token, **extra},
        HTTP_AUTHORIZATION=basic(service_client.client.client_id, service_client.secret),
    )


def test_introspect_active_access_token(tokens, service_client, user, mobile_client):
    body = introspect(service_client, tokens["access_token"]).json()
    assert body["active"] is True and body["sub"] == user.get_user_id()
    assert body["client_id"] == mobile_client.client.client_id and body["token_type"] == "Bearer"
    assert body["username"] == "alice"


def test_introspect_refresh_token(service_tokens, service_client):
    """A client introspects its own refresh token (test_introspection_policy.py: nobody else)."""
    body = introspect(service_client, service_tokens["refresh_token"], token_type_hint="refresh_token").json()
    assert body["active"] is True and body["token_type"] == "refresh_token"


@pytest.mark.parametrize("hint", ["refresh_token", "id_token", "urn:example:unknown"])
def test_a_hint_only_orders_the_search(tokens, service_tokens, service_client, hint):
    """RFC 7662 §2.1: a wrong or unknown ``token_type_hint`` still finds the token."""
    assert introspect(service_client, tokens["access_token"], token_type_hint=hint).json()["active"] is True
    body = introspect(service_client, service_tokens["refresh_token"], token_type_hint=hint).json()
    assert body["active"] is True and body["token_type"] == "refresh_token"


def test_introspect_unknown_tampered_and_expired(tokens, service_client, time_machine):
    import datetime as dt

    assert introspect(service_client, "garbage").json() == {"active": False}
    head, payload, sig = tokens["access_token"].split(".")
    tampered = f"{head}.{payload}.{sig[:-4]}AAAA"
    assert introspect(service_client, tampered).json() == {"active": False}
    time_machine.move_to(dt.datetime.now(tz=dt.UTC) + dt.timedelta(minutes=6))
    assert introspect(service_client, tokens["access_token"]).json() == {"active": False}


def test_introspection_requires_confidential_client_auth(tokens, mobile_client):
    response = form_post(
        HttpClient(), reverse("introspect"), {"token": tokens["access_token"], "client_id": mobile_client.client.client_id}
    )
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"


def test_revoke_refresh_token_revokes_family(tokens, mobile_client, service_client):
    response = form_post(
        HttpClient(), reverse("revoke"), {"token": tokens["refresh_token"], "client_id": mobile_client.client.client_id}
    )
    assert response.status_code == 200
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert introspect(service_client, tokens["access_token"]).json() == {"active": False}
    assert refresh(tokens["refresh_token"], mobile_client.client.client_id).json()["error"] == "invalid_grant"


def test_revoke_access_token_only(tokens, mobile_client, service_client):
    form_post(HttpClient(), reverse("revoke"), {"token": tokens["access_token"], "client_id": mobile_client.client.client_id})
    assert introspect(service_client, tokens["access_token"]).json() == {"active": False}
    assert refresh(tokens["refresh_token"], mobile_client.client.client_id).status_code == 200


def test_revoking_another_clients_token_is_refused_and_changes_nothing(tokens, service_client, mobile_client):
    """RFC 7009 section 2.1: the server verifies the token was issued to the requesting client
    and refuses otherwise (200 and nothing done on c627ee9)."""
    for token in (tokens["refresh_token"], tokens["access_token"]):
        response = form_post(
            HttpClient(),
            reverse("revoke"),
            {"token": token},
            HTTP_AUTHORIZATION=basic(service_client.client.client_id, service_client.secret),
        )
        assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
        assert response["Cache-Control"] == "no-store"
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert introspect(service_client, tokens["access_token"]).json()["active"] is True
    assert refresh(tokens["refresh_token"], mobile_client.client.client_id).status_code == 200
    denied = SecurityEvent.objects.filter(event_type="oauth.revocation", outcome="denied")
    assert denied.count() == 2
    assert {e.details["token_client_id"] for e in denied} == {mobile_client.client.client_id}
    assert all(e.client_id == service_client.client.client_id for e in denied)


def test_userinfo_get_and_post(tokens, user):
    http = HttpClient()
    got = http.get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert got.status_code == 200
    assert got.json() == {
        "sub": user.get_user_id(), "preferred_username": "alice", "name": "Alice Liddell",
        "given_name": "Alice", "family_name": "Liddell", "email": "alice@example.com", "email_verified": True,
    }
    posted = form_post(http, reverse("userinfo"), {"access_token": tokens["access_token"]})
    assert posted.status_code == 200 and posted.json()["sub"] == user.get_user_id()


def test_userinfo_refuses_missing_bad_and_revoked_tokens(tokens, mobile_client):
    http = HttpClient()
    missing = http.get(reverse("userinfo"))
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    bad = http.get(reverse("userinfo"), HTTP_AUTHORIZATION="Bearer not.a.token")
    assert bad.status_code == 401 and 'error="invalid_token"' in bad["WWW-Authenticate"]
    form_post(http, reverse("revoke"), {"token": tokens["access_token"], "client_id": mobile_client.client.client_id})
    assert http.get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").status_code == 401


def test_userinfo_for_a_user_deactivated_behind_the_revocation_says_so_by_rfc6750(tokens, user):
    """Raw SQL skips the signal that revokes a deactivated user's tokens: the token is still
    live, its user is not. The refusal is RFC 6750 §3's (a challenge, never cached)."""
    elsewhere(type(user)).filter(pk=user.pk).update(is_active=False)
    response = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    assert response["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert "no-store" in response["Cache-Control"]


def _deeply_nested_header_token() -> str:
    """A JWT-looking token whose header nests deeper than the JSON parser recurses."""
    import base64

    def segment(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    return f"{segment('[' * 6000)}.{segment('{}')}.AAAA"


def test_a_token_with_a_deeply_nested_header_is_invalid_not_a_500(tokens, service_client):
    """Was a RecursionError out of ``core.jwt_tokens`` (a 500 HTML page) at every bearer endpoint."""
    token = _deeply_nested_header_token()
    response = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401 and 'error="invalid_token"' in response["WWW-Authenticate"]
    assert introspect(service_client, token).json() == {"active": False}


def test_userinfo_needs_openid_scope(service_client):
    token = form_post(
        HttpClient(), reverse("token"), {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(service_client.client.client_id, service_client.secret),
    ).json()["access_token"]
    response = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"


def test_id_token_is_not_an_access_token(tokens):
    response = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {tokens['id_token']}")
    assert response.status_code == 401


@pytest.mark.parametrize("endpoint", ["introspect", "revoke"])
def test_a_repeated_token_is_invalid_request_and_changes_nothing(tokens, mobile_client, service_client, endpoint):
    """RFC 6749 §3.2 (RFC 7009 §2.1, RFC 7662 §2.1 build on it): a parameter is sent once. With
    ``token=<refresh>&token=junk`` the last value was judged: /revoke answered 200 and the
    refresh token the client named stayed live."""
    body = urlencode([("token", tokens["refresh_token"]), ("token", "junk")]).encode()
    auth: dict[str, Any] = ({"HTTP_AUTHORIZATION": basic(service_client.client.client_id, service_client.secret)}
                            if endpoint == "introspect" else {})
    if endpoint == "revoke":
        body += f"&client_id={mobile_client.client.client_id}".encode()
    response = HttpClient().generic("POST", reverse(endpoint), body, "application/x-www-form-urlencoded", **auth)
    assert response.status_code == 400 and response["Cache-Control"] == "no-store"
    assert response.json() == {"error": "invalid_request",
                               "error_description": "The token parameter is repeated (RFC 6749 section 3.2)."}
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert SecurityEvent.objects.filter(event_type="oauth.error", reason="invalid_request").exists()
    assert not SecurityEvent.objects.filter(event_type__in=["oauth.introspection", "oauth.revocation"]).exists()


@pytest.mark.parametrize("hint", ["id_token", "urn:example:unknown"])
def test_revocation_ignores_a_hint_it_does_not_know(tokens, mobile_client, service_client, hint):
    """RFC 7009 §2.1: the search "MUST extend" past a hint that does not find the token. An
    unknown hint was refused (unsupported_token_type, as a 401 without a challenge) and the
    token stayed live."""
    response = form_post(HttpClient(), reverse("revoke"), {"token": tokens["refresh_token"], "token_type_hint": hint,
                                                           "client_id": mobile_client.client.client_id})
    assert response.status_code == 200 and response.json() == {}
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert introspect(service_client, tokens["access_token"]).json() == {"active": False}


def test_userinfo_refuses_a_token_sent_two_ways(tokens):
    """RFC 6750 §2 and §3.1: a token in the header and another in the form (or two in the form)
    is ``invalid_request``; which one was judged was up to us (the header's, before)."""
    twice = urlencode([("access_token", tokens["access_token"])] * 2).encode()
    cases: list[tuple[bytes, dict[str, Any]]] = [
        (b"access_token=junk", {"HTTP_AUTHORIZATION": f"Bearer {tokens['access_token']}"}), (twice, {})]
    for body, headers in cases:
        response = HttpClient().generic("POST", reverse("userinfo"), body, "application/x-www-form-urlencoded",
                                        **headers)
        assert response.status_code == 400, response.content
        assert response.json()["error"] == "invalid_request"
        assert response["WWW-Authenticate"].startswith('Bearer error="invalid_request"')
    alone = form_post(HttpClient(), reverse("userinfo"), {"access_token": tokens["access_token"]})
    assert alone.status_code == 200
