"""Pushed authorization requests (RFC 9126) and request objects (RFC 9101), through the real
endpoints: what is accepted, and each refusal with nothing issued (no code, no request_uri
left usable) and a security event."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from joserfc.jwk import ECKey, OKPKey, RSAKey

from core.models import SecurityEvent
from sessions.models import AuthorizationCode

from .conftest import MOBILE_REDIRECT, PASSWORD, SERVICE_REDIRECT, authorize_params, exchange, query_of
from .jar_support import (
    authenticated,
    authorize_url,
    issuer,
    keyed_client,
    push,
    request_object,
    request_params,
    unsigned,
)

pytestmark = pytest.mark.django_db
URN = "urn:ietf:params:oauth:request_uri:"


def _events(event_type: str, reason: str | None = None) -> int:
    found = SecurityEvent.objects.filter(event_type=event_type)
    return found.filter(reason=reason).count() if reason else found.count()


def _pushed_public(mobile_client: Any, pkce: Any, **extra: Any) -> tuple[str, dict[str, str]]:
    params = authorize_params(mobile_client.client.client_id, pkce, **extra)
    response = push(params)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["request_uri"].startswith(URN) and body["expires_in"] == 60
    assert response["Cache-Control"] == "no-store"
    return body["request_uri"], params


def _redirect_query(response: Any, prefix: str = MOBILE_REDIRECT) -> dict[str, str]:
    assert response.status_code == 302, response.content[:400]
    assert response["Location"].startswith(prefix + "?"), response["Location"]
    return query_of(response["Location"])


def _refused(response: Any, error: str, words: str = "") -> None:
    """An authorization refusal without a redirect URI to trust (the query named none and the
    client registered several): the error page, never a redirect."""
    assert response.status_code == 400 and "Location" not in response, response.status_code
    text = response.content.decode()
    assert error in text and words in text.replace("&#x27;", "'"), text[-1500:]


# --- RFC 9126: push, then authorize with the request_uri ------------------------------------------

def test_public_client_pushes_then_gets_a_code_and_tokens(browser, mobile_client, pkce):
    request_uri, params = _pushed_public(mobile_client, pkce)
    client_id = mobile_client.client.client_id
    # RFC 9126 section 4: the query carries client_id and request_uri; anything else is ignored.
    query = _redirect_query(browser.get(authorize_url(client_id, request_uri=request_uri, state="outer")))
    assert query["state"] == params["state"] and query["iss"] == issuer()
    tokens = exchange(HttpClient(), query["code"], pkce, client_id)
    assert tokens.status_code == 200, tokens.content
    assert _events("oauth.par_accepted") == 1


def test_replayed_request_uri_is_refused(browser, mobile_client, pkce, user):
    request_uri, _ = _pushed_public(mobile_client, pkce)
    client_id = mobile_client.client.client_id
    _redirect_query(browser.get(authorize_url(client_id, request_uri=request_uri)))
    other = HttpClient()
    other.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    codes = AuthorizationCode.objects.count()
    for agent in (other, browser):  # another browser, and the same one once its code was issued
        _refused(agent.get(authorize_url(client_id, request_uri=request_uri)), "invalid_request_uri", "already used")
    assert AuthorizationCode.objects.count() == codes
    assert _events("oauth.request_uri_refused", "replayed") == 2


def test_the_browser_keeps_its_pushed_request_while_the_user_signs_in(client, mobile_client, pkce, user):
    request_uri, params = _pushed_public(mobile_client, pkce)
    url = authorize_url(mobile_client.client.client_id, request_uri=request_uri)
    to_login = client.get(url)
    assert to_login.status_code == 302 and reverse("accounts:login") in to_login["Location"]
    client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    assert _redirect_query(client.get(url))["state"] == params["state"]


def test_request_uri_of_another_client_is_refused_and_stays_for_its_own(browser, mobile_client, pkce):
    from clients.flows.registration import register_client

    thief = register_client(name="Other app", public=True, redirect_uris=[MOBILE_REDIRECT], client_id="other-app")
    request_uri, _ = _pushed_public(mobile_client, pkce)
    refused = browser.get(authorize_url(thief.client.client_id, request_uri=request_uri))
    assert query_of(refused["Location"])["error"] == "invalid_request_uri"  # its one redirect URI is the default
    assert not AuthorizationCode.objects.exists()
    assert "code" in _redirect_query(browser.get(authorize_url(mobile_client.client.client_id,
                                                               request_uri=request_uri)))


def test_expired_request_uri_is_refused(browser, mobile_client, pkce, settings):
    settings.IDP_PAR_REQUEST_URI_LIFETIME = 1
    params = authorize_params(mobile_client.client.client_id, pkce)
    request_uri = push(params).json()["request_uri"]
    time.sleep(2.1)
    _refused(browser.get(authorize_url(mobile_client.client.client_id, request_uri=request_uri)),
             "invalid_request_uri", "unknown or expired")
    assert not AuthorizationCode.objects.exists() and _events("oauth.request_uri_refused", "unknown_or_expired")


@pytest.mark.parametrize("request_uri", ["https://rp.example/request.jwt", "http://127.0.0.1:1/x", URN + "nope",
                                         "", "é" * 300])
def test_request_uri_not_issued_here_is_refused_and_never_fetched(browser, mobile_client, pkce, request_uri,
                                                                  monkeypatch):
    import requests

    monkeypatch.setattr(requests.Session, "request", lambda *a, **k: pytest.fail("fetched a request_uri"))
    query = _redirect_query(browser.get(authorize_url(mobile_client.client.client_id, request_uri=request_uri,
                                                      redirect_uri=MOBILE_REDIRECT)))
    assert query["error"] == "invalid_request_uri"
    assert not AuthorizationCode.objects.exists()


def test_par_refusals_are_json_never_redirects(mobile_client, pkce, service_client):
    client_id = mobile_client.client.client_id
    cases = [
        (authorize_params(client_id, pkce, request_uri=URN + "x"), 400, "invalid_request"),
        (authorize_params(client_id, pkce, redirect_uri="https://evil.example/cb"), 400, "invalid_request"),
        (authorize_params(client_id, pkce, code_challenge=None), 400, "invalid_request"),
        (authorize_params(client_id, pkce, prompt="none login"), 400, "invalid_request"),
        (authorize_params(client_id, pkce, resource="https://not-allowed.example"), 400, "invalid_target"),
        (authorize_params("no-such-client", pkce), 401, "invalid_client"),
        (authorize_params(service_client.client.client_id, pkce, redirect_uri=SERVICE_REDIRECT), 401,
         "invalid_client"),  # a confidential client without its credentials
    ]
    for data, status, error in cases:
        response = push(data)
        assert (response.status_code, response.json()["error"]) == (status, error), (data, response.content)
        assert "Location" not in response and "state" not in response.json()
    assert _events("oauth.par_refused") == len(cases) and _events("oauth.par_accepted") == 0
    assert HttpClient().get(reverse("par")).status_code == 405
    assert HttpClient().post(reverse("par"), {"client_id": client_id}).status_code == 400  # multipart


def test_a_pushed_request_is_bounded_like_a_request_object(browser, mobile_client, pkce):
    """A push waits in the shared cache, and a public client's id is all it takes: a 2 MB
    ``state`` was stored as readily as a short one. Up to the request object's bound it is."""
    from idp.flows.par import MAX_PUSHED_CHARACTERS

    params = authorize_params(mobile_client.client.client_id, pkce)
    sent = {k: v for k, v in params.items() if k not in ("state", "client_id")}  # client_id: a credential
    room = MAX_PUSHED_CHARACTERS - sum(len(k) + len(v) for k, v in sent.items()) - len("state")
    refused = push({**params, "state": "s" * (room + 1)})
    assert refused.status_code == 400 and refused.json() == {
        "error": "invalid_request",
        "error_description": f"The pushed request holds more than {MAX_PUSHED_CHARACTERS} characters."}
    assert _events("oauth.par_refused") == 1 and _events("oauth.par_accepted") == 0
    request_uri, _ = _pushed_public(mobile_client, pkce, state="s" * room)
    query = _redirect_query(browser.get(authorize_url(mobile_client.client.client_id, request_uri=request_uri)))
    assert query["state"] == "s" * room


def test_confidential_client_pushes_with_its_secret_and_the_user_consents(service_client, pkce, browser):
    import base64

    client_id = service_client.client.client_id
    basic = base64.b64encode(f"{client_id}:{service_client.secret}".encode()).decode()
    data = authorize_params(client_id, pkce, redirect_uri=SERVICE_REDIRECT)
    response = push({k: v for k, v in data.items() if k != "client_id"}, HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 201, response.content
    url = authorize_url(client_id, request_uri=response.json()["request_uri"])
    consent = browser.get(url)
    assert consent.status_code == 200 and b'name="decision"' in consent.content
    query = _redirect_query(browser.post(url, {"decision": "allow"}), SERVICE_REDIRECT)
    assert query["state"] == data["state"] and "code" in query


@pytest.mark.parametrize("where", ["client", "setting"])
def test_a_client_that_must_push_is_refused_at_authorize(browser, mobile_client, pkce, settings, where):
    if where == "client":
        mobile_client.client.require_pushed_authorization_requests = True
        mobile_client.client.save()
    else:
        settings.IDP_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS = True
    params = authorize_params(mobile_client.client.client_id, pkce)
    query = _redirect_query(browser.get(authorize_url(**params)))
    assert query["error"] == "invalid_request" and "/par" in query["error_description"]
    assert not AuthorizationCode.objects.exists() and _events("oauth.par_required") == 1
    request_uri, _ = _pushed_public(mobile_client, pkce)
    assert "code" in _redirect_query(browser.get(authorize_url(mobile_client.client.client_id,
                                                               request_uri=request_uri)))


# --- RFC 9101: request objects by value and pushed ------------------------------------------------

@pytest.fixture
def keyed(db: Any) -> tuple[Any, ECKey]:
    return keyed_client("jar-client")


def test_request_object_by_value_takes_precedence_over_the_query(browser, keyed, pkce):
    client, key = keyed
    params = request_params(client.client_id, pkce)
    signed = request_object(client.client_id, key, params)
    url = authorize_url(client.client_id, request=signed, state="from-the-query", scope="openid email")
    query = _redirect_query(browser.get(url), SERVICE_REDIRECT)
    assert query["state"] == params["state"]  # RFC 9101 section 5: only the object's parameters count
    assert AuthorizationCode.objects.get().scope == "openid profile"


def test_request_object_pushed_with_private_key_jwt(browser, keyed, pkce):
    client, key = keyed
    params = request_params(client.client_id, pkce)
    response = push({"client_id": client.client_id, "request": request_object(client.client_id, key, params),
                     **authenticated(client.client_id, key)})
    assert response.status_code == 201, response.content
    query = _redirect_query(browser.get(authorize_url(client.client_id, request_uri=response.json()["request_uri"])),
                            SERVICE_REDIRECT)
    assert query["state"] == params["state"] and "code" in query
    assert SecurityEvent.objects.get(event_type="oauth.par_accepted").details.get("signed") is True


def _bad_objects(client_id: str, key: ECKey, pkce: Any) -> dict[str, str]:
    params = request_params(client_id, pkce)
    return {
        "alg_none": unsigned({**params, "iss": client_id, "aud": issuer(), "exp": int(time.time()) + 60}),
        "other_key": request_object(client_id, ECKey.generate_key("P-256", private=True), params),
        "wrong_aud": request_object(client_id, key, params, aud="https://other-op.example"),
        "wrong_iss": request_object(client_id, key, params, iss="someone-else"),
        "no_exp": request_object(client_id, key, params, exp=None),
        "expired": request_object(client_id, key, params, exp=int(time.time()) - 120),
        "other_client_id": request_object(client_id, key, {**params, "client_id": "other"}),
        "nested": request_object(client_id, key, {**params, "request_uri": URN + "x"}),
        "hs256_with_a_public_key": "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl",
        "garbage": "a.b.c",
    }


def test_bad_request_objects_are_refused_at_authorize(browser, keyed, pkce):
    client, key = keyed
    for name, bad in _bad_objects(client.client_id, key, pkce).items():
        query = _redirect_query(browser.get(authorize_url(client.client_id, request=bad, redirect_uri=SERVICE_REDIRECT)),
                                SERVICE_REDIRECT)
        assert query["error"] in ("invalid_request_object", "invalid_request"), (name, query)
        assert '"' not in query["error_description"] and query["error_description"], (name, query)
    assert not AuthorizationCode.objects.exists()
    assert _events("oauth.request_object_refused") == len(_bad_objects(client.client_id, key, pkce))


def test_bad_request_objects_are_refused_at_par(keyed, pkce):
    client, key = keyed
    for name, bad in _bad_objects(client.client_id, key, pkce).items():
        response = push({"client_id": client.client_id, "request": bad, **authenticated(client.client_id, key)})
        assert response.status_code == 400 and response.json()["error"] in (
            "invalid_request_object", "invalid_request"), (name, response.content)
    assert _events("oauth.par_accepted") == 0


def test_unsigned_object_is_told_to_sign(browser, keyed, pkce):
    client, _ = keyed
    bad = unsigned({**request_params(client.client_id, pkce), "iss": client.client_id, "aud": issuer()})
    query = _redirect_query(browser.get(authorize_url(client.client_id, request=bad)), SERVICE_REDIRECT)
    assert query["error"] == "invalid_request_object" and "alg none is refused" in query["error_description"]


def test_client_requiring_signed_objects_refuses_plain_requests(browser, pkce, db):
    client, key = keyed_client("signed-only", require_signed_request_object=True)
    params = request_params(client.client_id, pkce)
    plain = _redirect_query(browser.get(authorize_url(**params)), SERVICE_REDIRECT)
    assert plain["error"] == "invalid_request" and "signed request object" in plain["error_description"]
    pushed_plain = push({**params, **authenticated(client.client_id, key)})
    assert pushed_plain.status_code == 400 and "signed request object" in pushed_plain.json()["error_description"]
    signed = _redirect_query(browser.get(authorize_url(client.client_id, request=request_object(
        client.client_id, key, params))), SERVICE_REDIRECT)
    assert "code" in signed


def test_discovery_fields_hold(client, browser, pkce, db, settings):
    """Each advertised request-object algorithm verifies; /par answers; the global switch holds."""
    served = client.get(reverse("openid-configuration")).json()
    assert served["pushed_authorization_request_endpoint"] == f"{issuer()}/par"
    assert served["require_pushed_authorization_requests"] is False and served["require_signed_request_object"] is False
    assert served["request_parameter_supported"] is True
    rsa, okp = RSAKey.generate_key(2048, private=True), OKPKey.generate_key("Ed25519", private=True)
    from clients.flows.registration import register_client

    keys = [k.as_dict(private=False) | {"kid": kid} for k, kid in ((rsa, "r1"), (okp, "o1"))]
    cid = register_client(name="Algs", public=False, redirect_uris=[SERVICE_REDIRECT], first_party=True,
                          auth_methods=["private_key_jwt"], jwks={"keys": keys}, client_id="algs").client.client_id
    ec_client, ec_key = keyed_client("alg-es256")
    signers: dict[str, tuple[str, Any, str]] = {
        "ES256": (ec_client.client_id, ec_key, "k1"), "RS256": (cid, rsa, "r1"), "PS256": (cid, rsa, "r1"),
        "EdDSA": (cid, okp, "o1"),
    }
    for alg in served["request_object_signing_alg_values_supported"]:
        signer, key, kid = signers[alg]
        signed = request_object(signer, key, request_params(signer, pkce), alg=alg, kid=kid)
        assert "code" in _redirect_query(browser.get(authorize_url(signer, request=signed)), SERVICE_REDIRECT), alg
    settings.IDP_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS = True
    assert client.get(reverse("openid-configuration")).json()["require_pushed_authorization_requests"] is True


def test_par_and_a_pushed_authorization_answer_503_while_the_cache_is_down(browser, mobile_client, pkce, settings):
    from core.outage_testing import cache_down

    from .test_outage import assert_json_503

    params = authorize_params(mobile_client.client.client_id, pkce)
    request_uri = push(params).json()["request_uri"]
    with cache_down(settings):
        assert_json_503(push(params))
        down = browser.get(authorize_url(mobile_client.client.client_id, request_uri=request_uri))
        assert down.status_code == 503 and b"Traceback" not in down.content
    assert push(params).status_code == 201
    assert "code" in _redirect_query(browser.get(authorize_url(mobile_client.client.client_id,
                                                               request_uri=request_uri)))
