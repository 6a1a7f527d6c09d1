"""Every discovery field stays true (OIDC Discovery 1.0 §3, RFC 8414 §2): this reads the served
/.well-known/openid-configuration and tries each advertised value against the server.

A field or value added to discovery without a way to try it here fails
``test_every_advertised_value_has_a_trial``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.test import Client as HttpClient
from django.urls import resolve, reverse
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, KeySet, KeySetSerialization, OKPKey, RSAKey

from accounts.tests.conftest import code_for, confirmed_totp
from clients.flows.registration import register_client
from core import jwt_tokens, keys
from core.acr import ACR_MFA, ACR_PASSWORD, ACR_PHISHING_RESISTANT
from sessions.dpop.client import create_proof

from .conftest import MOBILE_REDIRECT, PASSWORD, authorize_params, exchange, form_post, get_code, query_of
from .test_token import basic, refresh

pytestmark = pytest.mark.django_db

SERVICE_REDIRECT = "https://service.example.com/callback"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def served(client) -> dict[str, Any]:
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    return response.json()


def _authorize(http, params):
    return http.get(f"{reverse('authorize')}?{urlencode(params)}")


def _web_client(**extra: Any) -> Any:
    return register_client(name="Web", public=False, redirect_uris=[SERVICE_REDIRECT], first_party=True,
                           scopes=["openid", "profile", "email", "offline_access"], **extra)


def _code_tokens(browser, registered, pkce, **extra: Any) -> dict[str, Any]:
    params = authorize_params(registered.client.client_id, pkce, redirect_uri=SERVICE_REDIRECT, **extra)
    code = query_of(_authorize(browser, params)["Location"])["code"]
    response = exchange(HttpClient(), code, pkce, registered.client.client_id, redirect_uri=SERVICE_REDIRECT,
                        HTTP_AUTHORIZATION=basic(registered.client.client_id, registered.secret))
    assert response.status_code == 200, response.content
    return response.json() | {"_params": params}


# --- trials, one per advertised value ---------------------------------------------------------

def _assertion(client_id: str, key: Any, alg: str, aud: str) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
    return jose_jwt.encode({"alg": alg, "kid": "k1"}, claims, key, algorithms=[alg])


JWT_KEYS: dict[str, Callable[[], Any]] = {
    "ES256": lambda: ECKey.generate_key("P-256", private=True),
    "RS256": lambda: RSAKey.generate_key(2048, private=True),
    "PS256": lambda: RSAKey.generate_key(2048, private=True),
    "EdDSA": lambda: OKPKey.generate_key("Ed25519", private=True),
}


class AuthTrial:
    """A confidential client that authenticates with one method (and for JWTs one alg)."""

    def __init__(self, method: str, alg: str = "ES256", issuer: str = ""):
        self.method, self.alg, self.issuer = method, alg, issuer
        self.key = JWT_KEYS[alg]() if method == "private_key_jwt" else None
        jwks = {"keys": [self.key.as_dict(private=False) | {"kid": "k1", "alg": alg}]} if self.key else None
        self.registered = register_client(
            name=f"{method} {alg}", public=method == "none", redirect_uris=[MOBILE_REDIRECT] if method == "none" else [],
            grant_types=["authorization_code", "refresh_token"] if method == "none" else ["client_credentials"],
            scopes=["openid", "orders.read"], auth_methods=[method], jwks=jwks, first_party=True,
        )
        self.client_id = self.registered.client.client_id

    def post(self, url_name: str, data: dict[str, Any]) -> Any:
        headers: dict[str, str] = {}
        data = dict(data)
        if self.method == "client_secret_basic":
            assert self.registered.secret is not None
            headers["HTTP_AUTHORIZATION"] = basic(self.client_id, self.registered.secret)
        elif self.method == "client_secret_post":
            data |= {"client_id": self.client_id, "client_secret": self.registered.secret}
        elif self.method == "private_key_jwt":
            data |= {"client_assertion_type": ASSERTION_TYPE,
                     "client_assertion": _assertion(self.client_id, self.key, self.alg, f"{self.issuer}/token")}
        else:
            data |= {"client_id": self.client_id}
        return form_post(HttpClient(), reverse(url_name), data, **headers)

    def token(self, browser: Any = None, pkce: Any = None) -> dict[str, Any]:
        if self.method == "none":
            code, _ = get_code(browser, self.client_id, pkce, scope="openid")
            response = exchange(HttpClient(), code, pkce, self.client_id)
        else:
            response = self.post("token", {"grant_type": "client_credentials", "scope": "orders.read"})
        assert response.status_code == 200, (self.method, self.alg, response.content)
        return response.json()


@pytest.mark.parametrize("field", ["token_endpoint_auth_methods_supported"])
def test_each_token_endpoint_auth_method(served, browser, pkce, field):
    for method in served[field]:
        assert AuthTrial(method, issuer=served["issuer"]).token(browser, pkce)["access_token"]


def test_each_token_endpoint_auth_signing_alg(served):
    for alg in served["token_endpoint_auth_signing_alg_values_supported"]:
        assert AuthTrial("private_key_jwt", alg, issuer=served["issuer"]).token()["access_token"]


@pytest.mark.parametrize("endpoint", ["introspect", "revoke"])
def test_each_introspection_and_revocation_auth_signing_alg(served, endpoint):
    """RFC 8414 §2: each alg advertised for private_key_jwt at /introspect and /revoke works there,
    with the assertion's ``aud`` naming the token endpoint (what AuthTrial sends)."""
    field = {"introspect": "introspection", "revoke": "revocation"}[endpoint]
    for alg in served[f"{field}_endpoint_auth_signing_alg_values_supported"]:
        trial = AuthTrial("private_key_jwt", alg, issuer=served["issuer"])
        response = trial.post(endpoint, {"token": trial.token()["access_token"]})
        assert response.status_code == 200, (alg, response.content)
        if endpoint == "introspect":
            assert response.json()["active"] is True, alg


def test_each_introspection_auth_method(served):
    for method in served["introspection_endpoint_auth_methods_supported"]:
        trial = AuthTrial(method, issuer=served["issuer"])
        body = trial.post("introspect", {"token": trial.token()["access_token"]})
        assert body.status_code == 200 and body.json()["active"] is True, (method, body.content)


def test_each_revocation_auth_method(served, browser, pkce):
    for method in served["revocation_endpoint_auth_methods_supported"]:
        trial = AuthTrial(method, issuer=served["issuer"])
        token = trial.token(browser, pkce)
        target = token.get("refresh_token") or token["access_token"]
        assert trial.post("revoke", {"token": target}).status_code == 200, method
        if "refresh_token" in token:
            assert refresh(target, trial.client_id).json()["error"] == "invalid_grant"


def test_endpoints_resolve(served):
    for name in ["authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "introspection_endpoint",
                 "revocation_endpoint", "end_session_endpoint", "challenge_endpoint"]:
        url = served[name]
        assert url.startswith(served["issuer"] + "/"), name
        resolve(urlsplit(url).path)  # raises Resolver404 if the route is gone


def test_each_response_type(served, browser, mobile_client, pkce):
    for response_type in served["response_types_supported"]:
        assert response_type == "code"
        get_code(browser, mobile_client.client.client_id, pkce, response_type=response_type)


def _response_params(response: Any) -> dict[str, str]:
    if response.status_code == 200:  # form_post
        html = response.content.decode()
        return dict(re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', html))
    parts = urlsplit(response["Location"])
    return dict(parse_qsl(parts.fragment or parts.query))


def test_each_response_mode(served, browser, pkce):
    web = _web_client()
    for mode in served["response_modes_supported"]:
        params = authorize_params(web.client.client_id, pkce, redirect_uri=SERVICE_REDIRECT, response_mode=mode)
        response = _authorize(browser, params)
        values = _response_params(response)
        assert values.get("code") and values["state"] == params["state"], (mode, response)
        where = {"query": "?", "fragment": "#"}.get(mode)
        if where:
            assert response["Location"].startswith(SERVICE_REDIRECT + where)
        else:
            assert mode == "form_post" and response.status_code == 200


def _device_code_tokens(browser):
    from idp.oauth.grants.device_code import DEVICE_CODE

    register_client(name="TV", public=True, redirect_uris=[], client_id="tv", grant_types=[DEVICE_CODE])
    started = form_post(HttpClient(), reverse("device-authorization"), {"client_id": "tv", "scope": "openid"}).json()
    assert browser.post(reverse("device"), {"user_code": started["user_code"], "decision": "approve"}).status_code == 200
    return form_post(HttpClient(), reverse("token"),
                     {"grant_type": DEVICE_CODE, "device_code": started["device_code"], "client_id": "tv"}).json()


def _exchanged_tokens(browser, mobile_client, pkce):
    from idp.oauth.grants.token_exchange import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE

    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    subject = exchange(HttpClient(), code, pkce, mobile_client.client.client_id).json()["access_token"]
    backend = register_client(name="Backend", public=False, redirect_uris=[], grant_types=[TOKEN_EXCHANGE],
                              served_resources=[mobile_client.client.client_id],
                              token_exchange_audiences=["https://orders.example.com"])
    return form_post(HttpClient(), reverse("token"), {
        "grant_type": TOKEN_EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": "https://orders.example.com",
    }, HTTP_AUTHORIZATION=basic(backend.client.client_id, backend.secret or "")).json()


def test_each_grant_type(served, browser, mobile_client, pkce):
    trials = {
        "authorization_code": lambda: _code_tokens(browser, _web_client(), pkce),
        "client_credentials": lambda: AuthTrial("client_secret_basic").token(),
        "urn:ietf:params:oauth:grant-type:device_code": lambda: _device_code_tokens(browser),
        "urn:ietf:params:oauth:grant-type:token-exchange": lambda: _exchanged_tokens(browser, mobile_client, pkce),
    }
    for grant in served["grant_types_supported"]:
        if grant == "refresh_token":
            web = _web_client()
            tokens = _code_tokens(browser, web, pkce)
            response = form_post(HttpClient(), reverse("token"),
                                 {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                                 HTTP_AUTHORIZATION=basic(web.client.client_id, web.secret))
            assert response.status_code == 200 and response.json()["access_token"], response.content
        else:
            assert trials[grant]()["access_token"], grant


def test_each_scope(served, browser, pkce):
    web = _web_client()
    for scope in served["scopes_supported"]:
        tokens = _code_tokens(browser, web, pkce, scope=f"openid {scope}")
        assert scope in tokens["scope"].split(), scope
        userinfo = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").json()
        expected = {"openid": "sub", "profile": "preferred_username", "email": "email"}.get(scope)
        if expected:
            assert expected in userinfo, (scope, userinfo)
        else:
            assert scope == "offline_access" and tokens["refresh_token"]


def test_each_claim(served, browser, pkce):
    web = _web_client()
    tokens = _code_tokens(browser, web, pkce, scope="openid profile email")
    id_claims = _decode(tokens["id_token"])
    userinfo = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").json()
    for claim in served["claims_supported"]:
        assert claim in id_claims or claim in userinfo, claim


def _decode(token: str) -> dict[str, Any]:
    key_set = KeySet.import_key_set(cast(KeySetSerialization, keys.jwks()))
    header = jose_jwt.decode(token, key_set, algorithms=["ES256", "RS256", "EdDSA"]).header
    return dict(jose_jwt.decode(token, key_set, algorithms=[header["alg"]]).claims) | {"_alg": header["alg"]}


def test_each_id_token_signing_alg(served, client, browser, pkce):
    for alg in served["id_token_signing_alg_values_supported"]:
        web = _web_client(signing_alg=alg)
        tokens = _code_tokens(browser, web, pkce)
        jwks = KeySet.import_key_set(client.get(urlsplit(served["jwks_uri"]).path).json())
        decoded = jose_jwt.decode(tokens["id_token"], jwks, algorithms=[alg])
        assert decoded.header["alg"] == alg and decoded.claims["aud"] == web.client.client_id


def test_each_dpop_alg(served, browser, mobile_client, pkce):
    for alg in served["dpop_signing_alg_values_supported"]:
        code, _ = get_code(browser, mobile_client.client.client_id, pkce)
        key = JWT_KEYS[alg]()
        proof = create_proof(key, method="POST", url=served["token_endpoint"], alg=alg)
        response = exchange(HttpClient(), code, pkce, mobile_client.client.client_id, HTTP_DPOP=proof)
        assert response.status_code == 200 and response.json()["token_type"] == "DPoP", (alg, response.content)


def test_each_code_challenge_method(served, browser, mobile_client, pkce):
    for method in served["code_challenge_methods_supported"]:
        code, _ = get_code(browser, mobile_client.client.client_id, pkce, code_challenge_method=method)
        wrong = exchange(HttpClient(), code, pkce, mobile_client.client.client_id, code_verifier="x" * 50)
        assert wrong.json()["error"] == "invalid_grant"
        assert exchange(HttpClient(), code, pkce, mobile_client.client.client_id).status_code == 200, method


def test_each_prompt_value(served, browser, mobile_client, pkce):
    expected = {
        "none": lambda r: "code" in query_of(r["Location"]),
        "login": lambda r: r["Location"].startswith(reverse("accounts:login")) and "force=1" in r["Location"],
        "consent": lambda r: r.status_code == 200 and b"wants to access your account" in r.content,
        "select_account": lambda r: r.status_code == 200 and b"Use another account" in r.content,
    }
    for prompt in served["prompt_values_supported"]:
        response = _authorize(browser, authorize_params(mobile_client.client.client_id, pkce, prompt=prompt))
        assert expected[prompt](response), prompt


def _login_to_code(http: Any, url: str, totp: Any = None) -> str:
    """Follow the login, second-factor and authorize pages as a browser would, to the code."""
    response = http.get(url)
    for _ in range(10):
        if response.status_code == 302 and response["Location"].startswith(MOBILE_REDIRECT):
            return query_of(response["Location"])["code"]
        if response.status_code == 302:
            location = response["Location"]
            response = http.get(location)
            response.url_visited = location
            continue
        page, location = response.content.decode(), response.url_visited
        fields = dict(re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page))
        fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
        if 'name="password"' in page:
            response = http.post(location, {**fields, "username": "alice", "password": PASSWORD})
        elif 'name="code"' in page and totp is not None:
            response = http.post(reverse("accounts:verify"), {**fields, "method": "totp", "code": code_for(totp)})
        else:
            raise AssertionError(re.findall(r'role="alert">([^<]*)', page) or page[-1500:])
    raise AssertionError("no code")


def test_each_acr_value(served, client, user, mobile_client, pkce):
    totp = None
    for acr in served["acr_values_supported"]:
        if acr == ACR_MFA:
            totp = confirmed_totp(user)  # enrolled now, so the password-only trial above stays password-only
        params = authorize_params(mobile_client.client.client_id, pkce, acr_values=acr)
        url = f"{reverse('authorize')}?{urlencode(params)}"
        if acr == ACR_PHISHING_RESISTANT:
            # Only a passkey meets it (accounts/tests/test_browser.py signs in with one): a password
            # and TOTP session is sent back to sign in, and prompt=none is refused, never downgraded.
            demanded = client.get(url)
            assert demanded["Location"].startswith(reverse("accounts:login")) and "phishing-resistant" in demanded["Location"]
            none = client.get(url.replace(params["nonce"], "n-none") + "&prompt=none")
            assert query_of(none["Location"])["error"] == "login_required"
            continue
        code = _login_to_code(client, url, totp)
        tokens = exchange(HttpClient(), code, pkce, mobile_client.client.client_id).json()
        assert _decode(tokens["id_token"])["acr"] == acr, acr
    assert set(served["acr_values_supported"]) == {ACR_PASSWORD, ACR_MFA, ACR_PHISHING_RESISTANT}


def test_subject_type_public(served, browser, mobile_client, pkce, user):
    assert served["subject_types_supported"] == ["public"]
    web_tokens = _code_tokens(browser, _web_client(), pkce)
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    mobile_tokens = exchange(HttpClient(), code, pkce, mobile_client.client.client_id).json()
    assert _decode(web_tokens["id_token"])["sub"] == _decode(mobile_tokens["id_token"])["sub"] == user.get_user_id()


def test_flags(served, browser, client, mobile_client, pkce):
    assert served["authorization_response_iss_parameter_supported"] is True
    ok = _authorize(browser, authorize_params(mobile_client.client.client_id, pkce))
    err = _authorize(client, authorize_params(mobile_client.client.client_id, pkce, prompt="none"))
    assert query_of(ok["Location"])["iss"] == query_of(err["Location"])["iss"] == served["issuer"]
    # Request objects and /par: tried in idp/tests/test_par_jar.py (test_discovery_fields_hold); a
    # request_uri neither issued by /par nor registered is refused unfetched (test_request_uri_fetch.py).
    assert served["request_parameter_supported"] is True and served["request_uri_parameter_supported"] is True
    for name, error in [("request", "invalid_request_object"), ("request_uri", "invalid_request_uri")]:
        refused = _authorize(browser, authorize_params(mobile_client.client.client_id, pkce, **{name: "x"}))
        assert query_of(refused["Location"])["error"] == error
    assert served["resource_indicators_supported"] is True
    code, _ = get_code(browser, mobile_client.client.client_id, pkce, resource="https://api.example.com")
    access = exchange(HttpClient(), code, pkce, mobile_client.client.client_id).json()["access_token"]
    assert jwt_tokens.verify(access, typ="at+jwt")["aud"] in ("https://api.example.com", ["https://api.example.com"])
    assert served["claims_parameter_supported"] is False
    # Back-channel logout is tried end to end in test_backchannel_logout(_live).py.
    assert served["backchannel_logout_supported"] is True and served["backchannel_logout_session_supported"] is True
    assert served["frontchannel_logout_supported"] is False
    assert "userinfo_signing_alg_values_supported" not in served  # userinfo is plain JSON only


def test_each_ui_locale(served, client, mobile_client, pkce):
    """OIDC Core §3.1.2.1 ``ui_locales``: each advertised language renders the sign-in page."""
    assert served["ui_locales_supported"] and "en" in served["ui_locales_supported"]
    for code in served["ui_locales_supported"]:
        to_login = _authorize(client, authorize_params(mobile_client.client.client_id, pkce, ui_locales=code))
        page = client.get(to_login["Location"])
        assert page.status_code == 200 and f'<html lang="{code}" ' in page.content.decode()


TRIED = {
    "issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "introspection_endpoint",
    "revocation_endpoint", "end_session_endpoint", "challenge_endpoint", "scopes_supported",
    "response_types_supported", "response_modes_supported", "grant_types_supported", "subject_types_supported",
    "id_token_signing_alg_values_supported", "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported", "introspection_endpoint_auth_methods_supported",
    "revocation_endpoint_auth_methods_supported", "introspection_endpoint_auth_signing_alg_values_supported",
    "revocation_endpoint_auth_signing_alg_values_supported", "code_challenge_methods_supported", "claims_supported",
    "claims_parameter_supported", "request_parameter_supported", "request_uri_parameter_supported",
    "acr_values_supported", "prompt_values_supported", "authorization_response_iss_parameter_supported",
    "resource_indicators_supported", "dpop_signing_alg_values_supported", "backchannel_logout_supported",
    "frontchannel_logout_supported", "ui_locales_supported",
    # Tried in test_device_authorization.py, test_token_exchange.py, test_backchannel_logout.py:
    "device_authorization_endpoint", "backchannel_logout_session_supported",
    # tried in idp/tests/test_par_jar.py
    "pushed_authorization_request_endpoint", "require_pushed_authorization_requests",
    "request_object_signing_alg_values_supported", "require_signed_request_object",
    "require_request_uri_registration",  # tried in idp/tests/test_request_uri_fetch.py
}


def test_every_advertised_value_has_a_trial(served):
    """A new discovery field needs a trial above before it may be served."""
    assert set(served) <= TRIED, set(served) - TRIED
