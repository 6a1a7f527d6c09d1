"""RP-initiated logout, discovery (OIDC Discovery §3, RFC 8414), JWKS and key rotation."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.test import Client as HttpClient
from django.urls import reverse
from joserfc.jwk import ECKey

from accounts.models import BrowserSession
from core import jwt_tokens, keys
from core.models import KeyStatus, SecurityEvent, SigningKey
from sessions.models import DeviceSession, SessionStatus

pytestmark = pytest.mark.django_db


def test_logout_with_id_token_hint_redirects_and_revokes(browser, tokens, mobile_client):
    url = reverse("end-session")
    response = browser.get(url, {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "com.example.app:/logout", "state": "s1"})
    assert response.status_code == 302 and response["Location"] == "com.example.app:/logout?state=s1"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert "_auth_user_id" not in browser.session
    # The account page no longer lists that browser sign-in as open.
    assert BrowserSession.objects.exists() and not BrowserSession.objects.open().exists()


def _refusals() -> list[tuple[str, str]]:
    return list(SecurityEvent.objects.filter(event_type="logout.refused").order_by("pk").values_list("reason", "client_id"))


def test_logout_refuses_unregistered_post_logout_uri(browser, tokens, mobile_client):
    response = browser.get(reverse("end-session"), {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example"})
    assert response.status_code == 400 and "Location" not in response
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert _refusals() == [("unregistered_post_logout_redirect_uri", mobile_client.client.client_id)]
    assert not SecurityEvent.objects.filter(event_type="logout").exists()


def test_an_open_redirect_attempt_without_a_hint_is_refused_and_recorded(browser, tokens, mobile_client):
    for params in ({"post_logout_redirect_uri": "https://evil.example"},
                   {"client_id": mobile_client.client.client_id, "post_logout_redirect_uri": "https://evil.example"}):
        response = browser.get(reverse("end-session"), params)
        assert response.status_code == 400 and "Location" not in response
    assert "_auth_user_id" in browser.session and DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert _refusals() == [("unregistered_post_logout_redirect_uri", ""),
                           ("unregistered_post_logout_redirect_uri", mobile_client.client.client_id)]


def test_a_client_id_contradicting_the_hint_is_refused_and_recorded(browser, tokens):
    response = browser.get(reverse("end-session"), {"id_token_hint": tokens["id_token"], "client_id": "someone-else",
                                                    "post_logout_redirect_uri": "com.example.app:/logout"})
    assert response.status_code == 400 and "Location" not in response
    assert "_auth_user_id" in browser.session and DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert _refusals() == [("client_id_mismatch", "")]


def test_logout_without_hint_asks_for_confirmation(browser, tokens):
    page = browser.get(reverse("end-session"))
    assert page.status_code == 200 and b"Sign out" in page.content
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    browser.post(reverse("end-session"), {"confirm": "yes"})
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_an_access_token_or_logout_token_is_no_id_token_hint(browser, tokens, mobile_client):
    """Signed by the same key, naming the same user: still not an ID token. Neither signs the
    browser out without confirmation nor unlocks the client's redirect."""
    from django.utils import timezone

    from idp.backchannel import logout_token

    session = DeviceSession.objects.get()
    for hint in (tokens["access_token"], logout_token.sign(session, now=timezone.now())):
        response = browser.get(reverse("end-session"), {"id_token_hint": hint,
                                                        "post_logout_redirect_uri": "com.example.app:/logout"})
        assert response.status_code == 400 and "Location" not in response
        assert "_auth_user_id" in browser.session
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE


def test_a_relying_partys_posted_logout_works_like_get(browser, tokens):
    """RP-Initiated Logout 1.0 §2: the OP MUST support POST. The RP's auto-submitted form has
    no CSRF token of ours: it is sent on as the same request by GET, which then signs out."""
    browser.handler.enforce_csrf_checks = True
    params = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "com.example.app:/logout",
              "state": "s1"}
    posted = browser.post(reverse("end-session"), params)
    assert posted.status_code == 303
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE  # nothing yet: the GET decides
    final = browser.get(posted["Location"])
    assert final.status_code == 302 and final["Location"] == "com.example.app:/logout?state=s1"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_our_confirmation_still_needs_its_csrf_token(browser, tokens):
    browser.handler.enforce_csrf_checks = True
    assert browser.post(reverse("end-session"), {"confirm": "yes"}).status_code == 403
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE and "_auth_user_id" in browser.session


def test_logout_with_forged_hint(browser):
    response = browser.get(reverse("end-session"), {"id_token_hint": "a.b.c"})
    assert response.status_code == 400
    assert "_auth_user_id" in browser.session
    assert _refusals() == [("bad_id_token_hint", "")]


def test_discovery_matches_the_server(settings):
    http = HttpClient()
    oidc = http.get("/.well-known/openid-configuration").json()
    rfc8414 = http.get("/.well-known/oauth-authorization-server").json()
    assert oidc == rfc8414
    assert oidc["issuer"] == settings.IDP_ISSUER
    assert oidc["code_challenge_methods_supported"] == ["S256"]
    assert oidc["response_types_supported"] == ["code"]
    assert oidc["authorization_response_iss_parameter_supported"] is True
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "introspection_endpoint", "revocation_endpoint", "end_session_endpoint"):
        path = oidc[name].removeprefix(settings.IDP_ISSUER)
        assert http.options(path).status_code != 404, name


def test_jwks_has_thumbprint_kids_and_cache_headers():
    keys.ensure_keys()
    response = HttpClient().get(reverse("jwks"))
    assert "max-age=900" in response["Cache-Control"] and "public" in response["Cache-Control"]
    published = response.json()["keys"]
    assert {k["alg"] for k in published} == {"ES256", "RS256", "EdDSA"}
    for jwk in published:
        assert "d" not in jwk and "p" not in jwk
        assert jwk["kid"] == keys._import(dict(jwk), jwk["alg"]).thumbprint()


def test_private_keys_are_encrypted_at_rest():
    keys.ensure_keys()
    stored = SigningKey.objects.get(alg="ES256")
    assert '"d"' not in stored.private_key_encrypted
    private = json.loads(__import__("core.crypto", fromlist=["decrypt"]).decrypt(stored.private_key_encrypted))
    assert ECKey.import_key(private).thumbprint() == stored.kid


def test_rotation_publishes_before_signing_and_keeps_old_key_until_tokens_expire(time_machine):
    start = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
    time_machine.move_to(start)
    old_kid, _ = keys.active_key("ES256")
    old_token = jwt_tokens.sign({"iss": keys.app_settings.ISSUER, "exp": int(start.timestamp()) + 300}, alg="ES256")
    new = keys.rotate("ES256")
    kids = {k["kid"] for k in keys.jwks()["keys"]}
    assert {old_kid, new.kid} <= kids
    assert keys.active_key("ES256")[0] == old_kid  # published, not yet signing
    time_machine.move_to(start + dt.timedelta(seconds=3601))
    assert keys.active_key("ES256")[0] == new.kid
    assert SigningKey.objects.get(kid=old_kid).status == KeyStatus.RETIRING
    jwt_tokens.verify(old_token, now=start)  # still verifiable while retiring
    time_machine.move_to(start + dt.timedelta(seconds=3601 + 301 + 60))
    keys.advance()
    assert SigningKey.objects.get(kid=old_kid).status == KeyStatus.RETIRED
    assert old_kid not in {k["kid"] for k in keys.jwks()["keys"]}
    with pytest.raises(jwt_tokens.TokenInvalid):
        jwt_tokens.verify(old_token, now=start)


def test_rotate_keys_command_now():
    keys.ensure_keys()
    before = keys.active_key("RS256")[0]
    call_command("rotate_keys", "--alg", "RS256", "--now")
    assert keys.active_key("RS256")[0] != before


def test_alg_none_and_hmac_confusion_are_refused(tokens):
    import base64

    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    header, payload, _ = tokens["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    kid = json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
    none_token = f"{b64({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{b64(claims)}."
    with pytest.raises(jwt_tokens.TokenInvalid):
        jwt_tokens.verify(none_token, typ="at+jwt")
    import hashlib
    import hmac

    public = json.dumps(SigningKey.objects.get(kid=kid).public_jwk).encode()
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': kid})}.{b64(claims)}"
    sig = base64.urlsafe_b64encode(hmac.new(public, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    with pytest.raises(jwt_tokens.TokenInvalid):
        jwt_tokens.verify(f"{signing_input}.{sig}", typ="at+jwt")
    response = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {none_token}")
    assert response.status_code == 401


def test_accounts_logout_revokes_app_sessions_of_that_login(browser, tokens):
    browser.post(reverse("accounts:logout"))
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert DeviceSession.objects.get().status_reason == "logout"
