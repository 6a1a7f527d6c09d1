"""The FAPI 2.0 Security Profile as a per-client profile (docs/fapi.md maps each requirement to
a test here or in test_par_jar.py / tests/test_e2e_par_jar.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from joserfc.jwk import RSAKey

from clients.flows.registration import ClientRegistrationError, register_client
from core.models import SecurityEvent
from sessions.dpop.client import create_proof
from sessions.models import AuthorizationCode, DeviceSession

from .conftest import SERVICE_REDIRECT, form_post, query_of
from .jar_support import (
    authenticated,
    authorize_url,
    issuer,
    keyed_client,
    push,
    request_object,
    request_params,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, private=True)


@pytest.fixture
def bank(db: Any, rsa_key: RSAKey) -> tuple[Any, Any]:
    return keyed_client("fapi-bank", profile="fapi2", rsa=rsa_key)


def _push(client: Any, key: Any, pkce: Any, **extra: Any) -> Any:
    headers = {k: v for k, v in extra.items() if k.startswith("HTTP_")}
    params = {k: v for k, v in extra.items() if not k.startswith("HTTP_")}
    return push({**request_params(client.client_id, pkce, **params), **authenticated(client.client_id, key)},
                **headers)


def _code(browser: Any, client: Any, key: Any, pkce: Any) -> dict[str, str]:
    pushed = _push(client, key, pkce)
    assert pushed.status_code == 201, pushed.content
    response = browser.get(authorize_url(client.client_id, request_uri=pushed.json()["request_uri"]))
    assert response.status_code == 302 and response["Location"].startswith(SERVICE_REDIRECT), response.content[:300]
    return query_of(response["Location"])


def _exchange(client: Any, key: Any, code: str, pkce: Any, **headers: Any) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": SERVICE_REDIRECT,
            "code_verifier": pkce.verifier, **authenticated(client.client_id, key)}
    return form_post(HttpClient(), reverse("token"), data, **headers)


# --- registration: confidential, private_key_jwt only, ES256 tokens (FAPI 2.0 §5.3.2.1, §5.4.1) ----

@pytest.mark.parametrize(("kwargs", "words"), [
    ({"public": True}, "confidential"),
    ({"auth_methods": ["client_secret_basic"]}, "private_key_jwt only"),
    ({"auth_methods": ["private_key_jwt", "client_secret_basic"]}, "private_key_jwt only"),
    ({"signing_alg": "RS256"}, "ES256 or PS256"),
    ({"redirect_uris": ["http://127.0.0.1/cb"]}, "https"),
])
def test_registration_admits_only_what_the_profile_allows(db, kwargs, words):
    from joserfc.jwk import ECKey

    jwks = {"keys": [ECKey.generate_key("P-256", private=True).as_dict(private=False)]}
    base = {"name": "Bank", "public": False, "redirect_uris": [SERVICE_REDIRECT], "auth_methods": ["private_key_jwt"],
            "jwks": jwks, "profile": "fapi2"}
    with pytest.raises(ClientRegistrationError, match=words):
        register_client(**(base | kwargs))
    assert not SecurityEvent.objects.filter(event_type="client.registered").exists()


def test_password_grant_is_not_offered(bank):
    """FAPI 2.0 section 5.3.2.1: the resource owner password credentials grant is refused."""
    client, key = bank
    response = form_post(HttpClient(), reverse("token"), {"grant_type": "password", "username": "alice",
                                                          "password": "x", **authenticated(client.client_id, key)})
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


def test_unauthenticated_push_is_refused(bank, pkce):
    client, _ = bank
    response = push(request_params(client.client_id, pkce))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_fapi_client_defaults(bank):
    client, _ = bank
    assert client.signing_alg == "ES256"
    assert client.par_required() and client.pkce_required() and client.dpop_required()


# --- PAR required (FAPI 2.0 §5.3.2.2) --------------------------------------------------------------

def test_requests_without_par_are_refused(browser, bank, pkce):
    client, key = bank
    params = request_params(client.client_id, pkce)
    for url in (authorize_url(**params), authorize_url(client.client_id, request=request_object(client.client_id,
                                                                                               key, params))):
        response = browser.get(url)
        assert query_of(response["Location"])["error"] == "invalid_request"
    assert not AuthorizationCode.objects.exists()
    assert SecurityEvent.objects.filter(event_type="oauth.par_required").count() == 2


# --- client authentication: aud = issuer only, ES256/PS256 only (FAPI 2.0 §5.3.2.1, §5.4.1) ---------

def test_client_assertion_rules(bank, pkce, rsa_key):
    client, key = bank
    cases = [
        authenticated(client.client_id, key, aud=f"{issuer()}/token"),
        authenticated(client.client_id, key, aud=f"{issuer()}/par"),
        authenticated(client.client_id, rsa_key, alg="RS256", kid="r1"),
    ]
    for credentials in cases:
        response = push({**request_params(client.client_id, pkce), **credentials})
        assert response.status_code == 401 and response.json()["error"] == "invalid_client", response.content
    ps256 = push({**request_params(client.client_id, pkce), **authenticated(client.client_id, rsa_key, alg="PS256",
                                                                             kid="r1")})
    assert ps256.status_code == 201, ps256.content
    assert SecurityEvent.objects.filter(event_type="oauth.par_refused", reason="invalid_client").count() == 3


# --- the pushed request: redirect_uri, PKCE S256, signed objects ES256/PS256 with nbf ------------------

def test_pushed_request_rules(bank, pkce, rsa_key):
    client, key = bank
    params = request_params(client.client_id, pkce)
    now = int(time.time())
    refused = {
        "no redirect_uri": request_params(client.client_id, pkce, redirect_uri=None),
        "no PKCE": request_params(client.client_id, pkce, code_challenge=None, code_challenge_method=None),
        "plain PKCE": request_params(client.client_id, pkce, code_challenge_method="plain"),
        "RS256 object": {"request": request_object(client.client_id, rsa_key, params, alg="RS256", kid="r1")},
        "object without nbf": {"request": request_object(client.client_id, key, params, nbf=None)},
        "object living 2 hours": {"request": request_object(client.client_id, key, params, exp=now + 7200)},
    }
    for name, data in refused.items():
        response = push({"client_id": client.client_id, **data, **authenticated(client.client_id, key)})
        assert response.status_code == 400, (name, response.content)
    accepted = push({"client_id": client.client_id, **authenticated(client.client_id, key),
                     "request": request_object(client.client_id, key, params)})
    assert accepted.status_code == 201, accepted.content


# --- code lifetime <= 60 s, iss in the response, DPoP-bound tokens (FAPI 2.0 §5.3.2.1) -------------------

def test_code_lives_60_seconds_and_tokens_need_dpop(browser, bank, pkce, settings):
    settings.IDP_AUTHORIZATION_CODE_LIFETIME = 300
    client, key = bank
    query = _code(browser, client, key, pkce)
    assert query["iss"] == issuer()  # RFC 9207
    code = AuthorizationCode.objects.get()
    assert (code.expires_at - code.created_at).total_seconds() == 60
    bearer = _exchange(client, key, query["code"], pkce)
    assert bearer.status_code == 400 and bearer.json()["error"] == "invalid_dpop_proof"
    code.refresh_from_db()
    assert code.used_at is None  # refused before redemption: nothing issued
    rs256 = create_proof(RSAKey.generate_key(2048, private=True), method="POST", url=f"{issuer()}/token", alg="RS256")
    refused = _exchange(client, key, query["code"], pkce, HTTP_DPOP=rs256)
    assert refused.status_code == 400 and "ES256 or PS256" in refused.json()["error_description"]
    from joserfc.jwk import ECKey

    proof = create_proof(ECKey.generate_key("P-256", private=True), method="POST", url=f"{issuer()}/token")
    tokens = _exchange(client, key, query["code"], pkce, HTTP_DPOP=proof)
    assert tokens.status_code == 200, tokens.content
    assert tokens.json()["token_type"] == "DPoP"


def test_standard_client_code_lifetime_follows_the_setting(browser, pkce, settings, db):
    settings.IDP_AUTHORIZATION_CODE_LIFETIME = 300
    client, key = keyed_client("plain-keyed")
    _code(browser, client, key, pkce)
    code = AuthorizationCode.objects.get()
    assert (code.expires_at - code.created_at).total_seconds() == 300


# --- the procedures in docs/fapi.md and README work as written --------------------------------------

def test_create_client_with_the_fapi2_profile(tmp_path, db):
    import json
    from io import StringIO

    from django.core.management import call_command
    from joserfc.jwk import ECKey

    from clients.models import Client

    jwks = tmp_path / "bank-public-jwks.json"
    jwks.write_text(json.dumps({"keys": [ECKey.generate_key("P-256", private=True).as_dict(private=False)]}))
    out = StringIO()
    call_command("create_client", "--name", "Bank", "--confidential", "--profile", "fapi2", "--redirect-uri",
                 "https://bank.example/callback", "--auth-method", "private_key_jwt", "--jwks-file", str(jwks),
                 "--json", stdout=out)
    printed = json.loads(out.getvalue())
    assert printed["profile"] == "fapi2" and printed["signing_alg"] == "ES256" and "client_secret" not in printed
    assert Client.objects.get(client_id=printed["client_id"]).is_fapi2


def test_every_test_named_in_docs_fapi_exists():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "fapi.md").read_text()
    last = ""
    for path, name in re.findall(r"`(?:((?:tests/)?test_\w+\.py))?::(\w+)`", text):
        last = path or last
        source = root / (last if last.startswith("tests/") else f"idp/tests/{last}")
        assert f"def {name}(" in source.read_text(), f"docs/fapi.md names {last}::{name}, which does not exist"


def test_admin_refuses_a_fapi_profile_the_client_does_not_fit(admin_client, service_client):
    from .test_client_registration import admin_form

    staff = admin_client
    client = service_client.client
    response = staff.post(reverse("admin:clients_client_change", args=[client.pk]), admin_form(client, profile="fapi2"))
    assert response.status_code == 200 and "private_key_jwt only" in response.content.decode()
    client.refresh_from_db()
    assert client.profile == "standard"


# --- refresh rotation only with a retry that succeeds (FAPI 2.0 §5.3.2.1 clause 10) ----------------

def test_a_second_use_of_a_code_is_always_reuse(browser, bank, pkce):
    """FAPI 2.0 (and its conformance suite) deny every second use of a code, even with the same
    key a second later: refused, what the first use issued revoked (the retry of a lost answer
    other clients get, docs/device-sessions.md, is not offered)."""
    from joserfc.jwk import ECKey

    client, key = bank
    dpop = ECKey.generate_key("P-256", private=True)
    query = _code(browser, client, key, pkce)
    first = _exchange(client, key, query["code"], pkce,
                      HTTP_DPOP=create_proof(dpop, method="POST", url=f"{issuer()}/token"))
    assert first.status_code == 200, first.content
    again = _exchange(client, key, query["code"], pkce,
                      HTTP_DPOP=create_proof(dpop, method="POST", url=f"{issuer()}/token"))
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == "revoked"
    assert SecurityEvent.objects.filter(event_type="oauth.code_reuse").exists()
    assert not SecurityEvent.objects.filter(event_type="oauth.code_retried").exists()


def test_a_lost_refresh_response_is_retried_with_the_previous_token(browser, bank, pkce, settings):
    """Vigil rotates refresh tokens; FAPI 2.0 allows that only when retrying with the previous
    token succeeds: the retry gets the same successor, even with the global window at 0."""
    from joserfc.jwk import ECKey

    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 0
    client, key = bank
    dpop = ECKey.generate_key("P-256", private=True)

    def proof() -> str:
        return create_proof(dpop, method="POST", url=f"{issuer()}/token")

    query = _code(browser, client, key, pkce)
    tokens = _exchange(client, key, query["code"], pkce, HTTP_DPOP=proof())
    assert tokens.status_code == 200, tokens.content
    presented = tokens.json()["refresh_token"]

    def refresh() -> Any:
        data = {"grant_type": "refresh_token", "refresh_token": presented, **authenticated(client.client_id, key)}
        return form_post(HttpClient(), reverse("token"), data, HTTP_DPOP=proof())

    lost = refresh()  # the client never stores this answer
    assert lost.status_code == 200, lost.content
    retried = refresh()
    assert retried.status_code == 200, retried.content
    assert retried.json()["refresh_token"] == lost.json()["refresh_token"]
    assert not SecurityEvent.objects.filter(event_type="oauth.refresh_refused").exists()


def test_a_dpop_proof_at_par_binds_the_code_to_its_key(browser, bank, pkce):
    """RFC 9449 §10.1 (FAPI 2.0 asks for code binding when DPoP is used): a proof sent to /par
    binds the code as dpop_jkt would; an exchange with another key is refused and leaves the
    code usable; a dpop_jkt naming another key than the proof's, or a bad proof, is refused."""
    from joserfc.jwk import ECKey

    from sessions.dpop import thumbprint

    client, key = bank
    mine, other = ECKey.generate_key("P-256", private=True), ECKey.generate_key("P-256", private=True)

    def at(url_path: str, k: ECKey) -> str:
        return create_proof(k, method="POST", url=f"{issuer()}{url_path}")

    mismatch = push({**request_params(client.client_id, pkce, dpop_jkt=thumbprint(other.as_dict(private=False))),
                     **authenticated(client.client_id, key)}, HTTP_DPOP=at("/par", mine))
    assert mismatch.status_code == 400 and mismatch.json()["error"] == "invalid_request"
    wrong_htu = _push(client, key, pkce, HTTP_DPOP=at("/token", mine))
    assert wrong_htu.status_code == 400 and wrong_htu.json()["error"] == "invalid_dpop_proof"
    assert not AuthorizationCode.objects.exists()
    pushed = push({**request_params(client.client_id, pkce), **authenticated(client.client_id, key)},
                  HTTP_DPOP=at("/par", mine))
    assert pushed.status_code == 201, pushed.content
    response = browser.get(authorize_url(client.client_id, request_uri=pushed.json()["request_uri"]))
    code = query_of(response["Location"])["code"]
    assert AuthorizationCode.objects.get().dpop_jkt == thumbprint(mine.as_dict(private=False))
    stolen = _exchange(client, key, code, pkce, HTTP_DPOP=at("/token", other))
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert AuthorizationCode.objects.get().used_at is None
    assert _exchange(client, key, code, pkce, HTTP_DPOP=at("/token", mine)).status_code == 200


def test_a_dpop_proof_at_par_without_the_required_nonce_gets_one_and_pushes_nothing(browser, bank, pkce,
                                                                                    settings):
    """RFC 9449 §8 at /par (§10.1): with nonces required, a proof without one is answered
    ``use_dpop_nonce`` with a ``DPoP-Nonce`` header, no request is pushed and the refusal is
    recorded; the same push with the nonce binds the code to the key."""
    from joserfc.jwk import ECKey

    from core.models import SecurityEvent
    from sessions.dpop import thumbprint

    settings.SESSIONS_DPOP_NONCE_REQUIRED = True
    client, key = bank
    mine = ECKey.generate_key("P-256", private=True)
    first = _push(client, key, pkce, HTTP_DPOP=create_proof(mine, method="POST", url=f"{issuer()}/par"))
    assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce", first.content
    nonce = first["DPoP-Nonce"]
    assert nonce and first["Cache-Control"] == "no-store"
    assert not SecurityEvent.objects.filter(event_type="oauth.par_accepted").exists()
    refused = SecurityEvent.objects.get(event_type="dpop.refused")
    assert (refused.outcome, refused.client_id) == ("denied", client.client_id)
    pushed = _push(client, key, pkce, HTTP_DPOP=create_proof(mine, method="POST", url=f"{issuer()}/par", nonce=nonce))
    assert pushed.status_code == 201, pushed.content
    response = browser.get(authorize_url(client.client_id, request_uri=pushed.json()["request_uri"]))
    assert query_of(response["Location"])["code"]
    assert AuthorizationCode.objects.get().dpop_jkt == thumbprint(mine.as_dict(private=False))


def test_a_dpop_header_nested_too_deep_is_a_bad_proof_not_500(bank, pkce):
    """The FAPI algorithm check reads the proof's header before the proof is verified: JSON
    nested past Python's parser's depth is an invalid proof like any other."""
    import base64

    client, key = bank
    deep = base64.urlsafe_b64encode(b"[" * 3000).rstrip(b"=").decode()
    response = _push(client, key, pkce, HTTP_DPOP=f"{deep}.e30.AAAA")
    assert response.status_code == 400 and response.json()["error"] == "invalid_dpop_proof"
    assert not SecurityEvent.objects.filter(event_type="oauth.par_accepted").exists()
