"""Client authentication (RFC 6749 §2.3, RFC 7523, OIDC Core §9): one method per request,
several registered methods per client, strict Basic parsing, and never a 500."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any
from urllib.parse import quote_plus

import pytest
from django.conf import settings as django_settings
from django.test import Client as HttpClient
from django.urls import reverse
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey

from clients.flows.registration import ClientRegistrationError, register_client
from clients.models import Client
from core import keys
from core.models import SecurityEvent
from sessions.models import AccessToken, DeviceSession, SessionStatus

from .conftest import form_post
from .test_token import basic

pytestmark = pytest.mark.django_db

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ENDPOINTS = {"token": {"grant_type": "client_credentials"}, "introspect": {"token": "x"}, "revoke": {"token": "x"}}


def raw_basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


def jwt_client(*methods: str, jwks_key: ECKey | None = None, client_id: str | None = None) -> tuple[Client, ECKey]:
    key = jwks_key or ECKey.generate_key("P-256", private=True)
    public = key.as_dict(private=False) | {"kid": "k1", "use": "sig", "alg": "ES256"}
    registered = register_client(
        name="JWT service", public=False, redirect_uris=[], grant_types=["client_credentials"], scopes=["orders.read"],
        auth_methods=list(methods) or ["private_key_jwt"], jwks={"keys": [public]}, client_id=client_id,
    )
    return registered.client, key


def assertion(client_id: str, key: ECKey, aud: str | list[str], **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
    claims.update(overrides)
    return jose_jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key, algorithms=["ES256"])


def with_assertion(data: dict[str, str], signed: str) -> dict[str, str]:
    return {**data, "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}


def issuer_url(path: str = "") -> str:
    return f"{django_settings.IDP_ISSUER}{path}"


def last_error_event() -> SecurityEvent:
    return SecurityEvent.objects.filter(event_type="oauth.error").order_by("-id").first()  # type: ignore[return-value]


def assert_invalid_client(response: Any) -> dict[str, Any]:
    assert response.status_code == 401, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response["WWW-Authenticate"].startswith("Basic ")
    body = response.json()
    assert body["error"] == "invalid_client"
    return body


# --- item 1: no 500 for an assertion naming a client without keys ----------------------------
@pytest.mark.parametrize("name", ["token", "introspect", "revoke"])
def test_assertion_naming_a_secret_client_is_invalid_client_not_500(name, service_client):
    """A secret client has no JWKS (MissingKeyError on c627ee9): it never registered private_key_jwt."""
    client_id = service_client.client.client_id
    signed = assertion(client_id, ECKey.generate_key("P-256", private=True), issuer_url(f"/{name}"))
    body = assert_invalid_client(form_post(HttpClient(), reverse(name), with_assertion(ENDPOINTS[name], signed)))
    assert "client_secret_basic" in body["error_description"] and "private_key_jwt" in body["error_description"]
    assert last_error_event().details["auth_failure"] == "method_mismatch"
    assert last_error_event().client_id == client_id


@pytest.mark.parametrize("name", ["token", "introspect", "revoke"])
@pytest.mark.parametrize("jwks", [{}, {"keys": []}, {"keys": [{"kty": "nonsense"}]}])
def test_private_key_jwt_client_whose_keys_were_removed_is_invalid_client(name, jwks):
    client, key = jwt_client()
    Client.objects.filter(pk=client.pk).update(jwks=jwks)  # an admin emptied or broke the JWKS
    signed = assertion(client.client_id, key, issuer_url(f"/{name}"))
    body = assert_invalid_client(form_post(HttpClient(), reverse(name), with_assertion(ENDPOINTS[name], signed)))
    assert body["error_description"] == "Client authentication failed."
    assert last_error_event().details["auth_failure"] == "no_client_keys"
    assert not AccessToken.objects.exists()


# --- item 1: NUL and malformed Basic headers -------------------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize(
    "raw", [b"svc\x00id:secret", b"svc:sec\x00ret", b"svc%00id:secret", b"svc:secret%00", b"a\x00b:secret", b"\x00:x"]
)
@pytest.mark.parametrize("name", ["token", "introspect", "revoke"])
def test_basic_credentials_with_nul_are_refused_before_the_database(name, raw, service_client):
    """On c627ee9 a NUL in the decoded id reached PostgreSQL (DataError, a 500; found again by
    the header property run: the last two)."""
    response = form_post(HttpClient(), reverse(name), ENDPOINTS[name], HTTP_AUTHORIZATION=raw_basic(raw))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("header", ["Bearer a\x00b", "Basic QTpC\x00"])
def test_nul_in_protocol_headers_is_refused(header):
    response = form_post(HttpClient(), reverse("token"), {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=header)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_nul_in_dpop_header_is_refused():
    response = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION="DPoP x", HTTP_DPOP="a.b\x00.c")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "header, problem",
    [
        ("Basic", "empty"),
        ("Basic !!!!", "not_base64"),
        ("Basic QTp", "not_base64"),
        (raw_basic(b"no-colon-here"), "no_colon"),
        (raw_basic(b"\xff\xfe:secret"), "not_utf8"),
        (raw_basic(b"svc%ff:secret"), "not_utf8"),
        (raw_basic(b"svc%zz:secret"), "bad_percent_encoding"),
        (raw_basic(b":secret"), "empty_part"),
        (raw_basic(b"svc:"), "empty_part"),
        (raw_basic(b"svc\tid:secret"), "control_character"),
    ],
)
@pytest.mark.parametrize("name", ["token", "introspect", "revoke"])
def test_malformed_basic_header_is_invalid_client_401(name, header, problem, service_client):
    body = assert_invalid_client(form_post(HttpClient(), reverse(name), ENDPOINTS[name], HTTP_AUTHORIZATION=header))
    assert problem in body["error_description"]
    assert last_error_event().details["auth_failure"] == "malformed_basic"


def test_basic_credentials_are_form_urlencoded_per_rfc6749_2_3_1(db):
    """A ':' in the id and '+' or ' ' in it are percent/plus-encoded before base64."""
    registered = register_client(name="Odd id", public=False, redirect_uris=[], grant_types=["client_credentials"],
                                 scopes=["orders.read"], client_id="svc:1 +x")
    assert registered.secret is not None
    header = raw_basic(f"{quote_plus('svc:1 +x')}:{quote_plus(registered.secret)}".encode())
    response = form_post(HttpClient(), reverse("token"), {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=header)
    assert response.status_code == 200, response.content


# --- item 3: private_key_jwt audiences per endpoint --------------------------------------
@pytest.mark.parametrize(
    "name, aud",
    [
        ("introspect", "/introspect"),
        ("introspect", ""),
        ("introspect", "/token"),
        ("revoke", "/revoke"),
        ("revoke", "/"),
        ("token", "/token"),
        ("token", ""),
    ],
)
def test_assertion_audience_may_be_issuer_token_endpoint_or_the_endpoint_itself(name, aud):
    client, key = jwt_client()
    data = with_assertion(ENDPOINTS[name], assertion(client.client_id, key, issuer_url(aud)))
    response = form_post(HttpClient(), reverse(name), data)
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "name, aud",
    [("token", "/introspect"), ("token", "/revoke"), ("revoke", "/introspect"), ("introspect", "/userinfo"),
     ("introspect", "https://elsewhere.example")],
)
def test_assertion_for_another_endpoint_or_server_is_refused(name, aud):
    client, key = jwt_client()
    target = aud if aud.startswith("https://") else issuer_url(aud)
    data = with_assertion(ENDPOINTS[name], assertion(client.client_id, key, target))
    assert_invalid_client(form_post(HttpClient(), reverse(name), data))
    assert last_error_event().details["auth_failure"] == "bad_assertion"
    assert not AccessToken.objects.exists()


def test_assertion_replay_lifetime_and_issuer_checks():
    client, key = jwt_client()
    url = issuer_url("/token")
    signed = assertion(client.client_id, key, url)
    assert form_post(HttpClient(), reverse("token"), with_assertion(ENDPOINTS["token"], signed)).status_code == 200
    replay = form_post(HttpClient(), reverse("token"), with_assertion(ENDPOINTS["token"], signed))
    assert_invalid_client(replay)
    assert last_error_event().details["auth_failure"] == "assertion_replay"
    now = int(time.time())
    for bad in (
        assertion(client.client_id, key, url, iat=now, exp=now + 3600),  # lives too long
        assertion(client.client_id, key, url, iss="someone-else"),
        assertion(client.client_id, key, url, exp=now - 120),
        assertion(client.client_id, key, url, jti=None),
    ):
        assert_invalid_client(form_post(HttpClient(), reverse("token"), with_assertion(ENDPOINTS["token"], bad)))
    assert AccessToken.objects.count() == 1


def test_client_jwks_is_parsed_once_and_a_replaced_jwks_takes_effect_at_once(monkeypatch):
    """The registered JWKS is parsed once per process (config cache), not per request; a
    JWKS replaced in the admin (a save) is what the very next assertion is checked against."""
    from joserfc.jwk import KeySet

    keys.ensure_keys()  # a first signing key is a configuration change too
    client, old_key = jwt_client()
    parsed: list[int] = []
    real_import = KeySet.import_key_set

    def counting_import(data: Any, *a: Any, **k: Any) -> KeySet:
        parsed.append(1)
        return real_import(data, *a, **k)

    monkeypatch.setattr(KeySet, "import_key_set", counting_import)
    for _ in range(3):
        signed = assertion(client.client_id, old_key, issuer_url("/token"))
        assert form_post(HttpClient(), reverse("token"), with_assertion(ENDPOINTS["token"], signed)).status_code == 200
    assert len(parsed) == 1
    new_key = ECKey.generate_key("P-256", private=True)
    client.jwks = {"keys": [new_key.as_dict(private=False) | {"kid": "k1", "use": "sig", "alg": "ES256"}]}
    client.save()
    stale = assertion(client.client_id, old_key, issuer_url("/token"))
    assert_invalid_client(form_post(HttpClient(), reverse("token"), with_assertion(ENDPOINTS["token"], stale)))
    assert last_error_event().details["auth_failure"] == "bad_assertion"
    fresh = assertion(client.client_id, new_key, issuer_url("/token"))
    assert form_post(HttpClient(), reverse("token"), with_assertion(ENDPOINTS["token"], fresh)).status_code == 200
    assert AccessToken.objects.count() == 4


def test_assertion_type_without_assertion_and_garbage_assertions_are_invalid_client():
    for data in ({"client_assertion_type": ASSERTION_TYPE}, {"client_assertion": "a.b.c", "client_assertion_type": "x"},
                 {"client_assertion": "not-a-jwt", "client_assertion_type": ASSERTION_TYPE},
                 {"client_assertion": "e30.e30.", "client_assertion_type": ASSERTION_TYPE}):
        assert_invalid_client(form_post(HttpClient(), reverse("token"), {"grant_type": "client_credentials", **data}))


# --- item 4: several methods, mismatches named --------------------------------------------
def test_secret_client_registered_for_basic_only_refuses_post_and_names_both(db):
    registered = register_client(name="Strict", public=False, redirect_uris=[], grant_types=["client_credentials"],
                                 scopes=["orders.read"], auth_methods=["client_secret_basic"])
    client_id, secret = registered.client.client_id, registered.secret
    assert secret is not None
    data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    body = assert_invalid_client(form_post(HttpClient(), reverse("token"), data))
    assert body["error_description"] == (
        "This client is registered for client_secret_basic; the request used client_secret_post."
    )
    event = last_error_event()
    assert event.details["auth_failure"] == "method_mismatch" and event.client_id == client_id
    assert not AccessToken.objects.exists()
    ok = form_post(HttpClient(), reverse("token"), {"grant_type": "client_credentials"},
                   HTTP_AUTHORIZATION=basic(client_id, secret))
    assert ok.status_code == 200


@pytest.mark.parametrize("how", ["basic", "post"])
def test_wrong_secret_stays_generic(how, service_client):
    client_id = service_client.client.client_id
    data = {"grant_type": "client_credentials"}
    extra = {}
    if how == "basic":
        extra["HTTP_AUTHORIZATION"] = basic(client_id, "wrong")
    else:
        data.update(client_id=client_id, client_secret="wrong")
    body = assert_invalid_client(form_post(HttpClient(), reverse("token"), data, **extra))
    assert body["error_description"] == "Client authentication failed."
    assert last_error_event().details["auth_failure"] == "wrong_secret"


def test_unknown_client_is_generic(db):
    body = assert_invalid_client(form_post(HttpClient(), reverse("token"), {"grant_type": "client_credentials"},
                                           HTTP_AUTHORIZATION=basic("nobody", "secret")))
    assert body["error_description"] == "Client authentication failed."


def test_client_with_private_key_jwt_and_a_secret_uses_either():
    client, key = jwt_client("private_key_jwt", "client_secret_basic")
    assert client.auth_methods() == ["private_key_jwt", "client_secret_basic"] and client.secret_hash
    from clients.flows.registration import rotate_secret

    secret = rotate_secret(client)
    by_secret = form_post(HttpClient(), reverse("token"), ENDPOINTS["token"], HTTP_AUTHORIZATION=basic(client.client_id, secret))
    assert by_secret.status_code == 200, by_secret.content
    signed = assertion(client.client_id, key, issuer_url("/token"))
    assert form_post(HttpClient(), reverse("token"), with_assertion(ENDPOINTS["token"], signed)).status_code == 200
    post = {**ENDPOINTS["token"], "client_id": client.client_id, "client_secret": secret}
    body = assert_invalid_client(form_post(HttpClient(), reverse("token"), post))
    assert body["error_description"] == (
        "This client is registered for private_key_jwt, client_secret_basic; the request used client_secret_post."
    )


def test_confidential_client_sending_only_its_id_is_told_its_methods(service_client):
    data = {"grant_type": "client_credentials", "client_id": service_client.client.client_id}
    body = assert_invalid_client(form_post(HttpClient(), reverse("token"), data))
    assert "client_secret_basic, client_secret_post; the request used none" in body["error_description"]


def test_two_methods_in_one_request_is_invalid_request(service_client):
    client_id, secret = service_client.client.client_id, service_client.secret
    data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    response = form_post(HttpClient(), reverse("token"), data, HTTP_AUTHORIZATION=basic(client_id, secret))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert not AccessToken.objects.exists()


def test_repeated_credential_parameter_is_invalid_request(service_client):
    client_id, secret = service_client.client.client_id, service_client.secret
    response = form_post(HttpClient(), reverse("token"), {"grant_type": "client_credentials", "client_id": [client_id, client_id],
                                                          "client_secret": secret})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_body_client_id_must_match_basic(service_client, mobile_client):
    client_id, secret = service_client.client.client_id, service_client.secret
    data = {"grant_type": "client_credentials", "client_id": mobile_client.client.client_id}
    assert_invalid_client(form_post(HttpClient(), reverse("token"), data, HTTP_AUTHORIZATION=basic(client_id, secret)))
    assert last_error_event().details["auth_failure"] == "client_id_mismatch"


def test_public_client_cannot_introspect_and_is_told_so(tokens, mobile_client):
    data = {"token": tokens["access_token"], "client_id": mobile_client.client.client_id}
    body = assert_invalid_client(form_post(HttpClient(), reverse("introspect"), data))
    assert "cannot authenticate at the introspection endpoint" in body["error_description"]


def test_public_client_revokes_its_own_token_with_none(tokens, mobile_client):
    data = {"token": tokens["refresh_token"], "client_id": mobile_client.client.client_id}
    assert form_post(HttpClient(), reverse("revoke"), data).status_code == 200
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


# --- registration rules --------------------------------------------------------------------
def test_default_confidential_client_gets_both_secret_methods_and_rs256(db):
    client = register_client(name="Web", public=False, redirect_uris=["https://web.example/cb"]).client
    assert client.auth_methods() == ["client_secret_basic", "client_secret_post"]
    assert client.token_endpoint_auth_method == "client_secret_basic" and client.signing_alg == "RS256"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"public": True, "auth_methods": ["none", "client_secret_post"]}, "public clients"),
        ({"public": False, "auth_methods": ["none"]}, "public clients"),
        ({"public": False, "auth_methods": ["client_secret_jwt"]}, "unknown auth method"),
        ({"public": False, "auth_methods": ["private_key_jwt"]}, "JWKS"),
        ({"public": False, "auth_methods": ["private_key_jwt"], "jwks": {"keys": [{"kty": "EC"}]}}, "unreadable"),
        ({"public": False, "signing_alg": "HS256"}, "signing alg"),
        ({"public": False, "served_resources": ["has space"]}, "served resource"),
    ],
)
def test_registration_refuses_bad_method_combinations(db, kwargs, message):
    with pytest.raises(ClientRegistrationError, match=message):
        register_client(name="X", redirect_uris=["https://x.example/cb"] if not kwargs["public"] else ["com.x:/cb"], **kwargs)
    assert not Client.objects.exists()


def test_private_jwks_is_refused_at_registration(db):
    key = ECKey.generate_key("P-256", private=True)
    with pytest.raises(ClientRegistrationError, match="private key"):
        register_client(name="X", public=False, redirect_uris=[], grant_types=["client_credentials"],
                        auth_methods=["private_key_jwt"], jwks={"keys": [key.as_dict(private=True)]})


def test_assertion_audiences_per_endpoint(settings):
    from idp.oauth.client_auth import PrivateKeyJWT

    issuer = settings.IDP_ISSUER
    base = [issuer, f"{issuer}/", f"{issuer}/token"]
    verifier = PrivateKeyJWT()
    assert verifier.audiences("token") == base
    assert verifier.audiences("introspection") == [*base, f"{issuer}/introspect"]
    assert verifier.audiences("revocation") == [*base, f"{issuer}/revoke"]
    assert verifier.audiences("usage") == [*base, f"{issuer}/usage"]
    assert verifier.audiences("anything-else") == base


# --- discovery stays true: every advertised method authenticates where it is advertised -----
DISCOVERY_FIELDS = {
    "token_endpoint_auth_methods_supported": "token",
    "introspection_endpoint_auth_methods_supported": "introspect",
    "revocation_endpoint_auth_methods_supported": "revoke",
}


@pytest.mark.parametrize("field, name", list(DISCOVERY_FIELDS.items()))
def test_every_advertised_auth_method_works_at_its_endpoint(field, name, mobile_client):
    advertised = HttpClient().get("/.well-known/openid-configuration").json()[field]
    assert advertised
    for method in advertised:
        data = dict(ENDPOINTS[name])
        headers: dict[str, str] = {}
        if method == "none":
            data = {"token": "x", "client_id": mobile_client.client.client_id} if name != "token" else {
                "grant_type": "refresh_token", "refresh_token": "unknown", "client_id": mobile_client.client.client_id}
        elif method == "private_key_jwt":
            client, key = jwt_client()
            path = {"token": "/token", "introspect": "/introspect", "revoke": "/revoke"}[name]
            data = with_assertion(data, assertion(client.client_id, key, issuer_url(path)))
        else:
            registered = register_client(name=method, public=False, redirect_uris=[], grant_types=["client_credentials"],
                                         scopes=["orders.read"], auth_methods=[method])
            assert registered.secret is not None
            if method == "client_secret_basic":
                headers["HTTP_AUTHORIZATION"] = basic(registered.client.client_id, registered.secret)
            else:
                data.update(client_id=registered.client.client_id, client_secret=registered.secret)
        response = form_post(HttpClient(), reverse(name), data, **headers)
        if method == "none" and name == "token":
            # Authenticated as the public client; the unknown refresh token is the grant's error.
            assert response.json()["error"] == "invalid_grant", (method, response.content)
        else:
            assert response.status_code == 200, (field, method, response.content)


@pytest.mark.parametrize("header", [" ", "\t", "  \t "])
def test_a_blank_authorization_header_is_no_basic_scheme(header: str) -> None:
    """Found by the fuzzer: a header of only whitespace was an IndexError (a 500)."""
    from core.http_basic import is_basic

    assert is_basic(header) is False
    response = HttpClient(raise_request_exception=False).post(
        "/token", data="grant_type=client_credentials", content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=header)
    assert response.status_code in (400, 401) and "error" in response.json()


ODD_BASIC_SHAPES = ["Basic", "Basic ", "Basic   ", "Basic\t", "Basic\tQTpC", "basic\t\tQTpC  ", "Basic QTpC QTpC",
                    "Basic \u20ac\u20ac", "Basic \xe9", "Basic\xa0QTpC", "Basic\x1cQTpC", "Basic \ud800", "Basic =",
                    "Basic " + "A" * 5000, "Basicx QTpC"]


@pytest.mark.parametrize("header", ODD_BASIC_SHAPES)
@pytest.mark.parametrize("name", ["token", "introspect", "revoke"])
def test_odd_basic_shapes_get_a_json_error(name, header):
    """The scheme alone, only whitespace or tabs after it, characters beyond latin-1, lone
    surrogates, an overlong header: each an RFC 6749 §5.2 JSON error, nothing issued."""
    response = HttpClient(raise_request_exception=False).post(
        reverse(name), data="grant_type=client_credentials&token=x", content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=header)
    assert response.status_code in (400, 401), response.content
    assert response.json()["error"] in {"invalid_request", "invalid_client"}
    assert not AccessToken.objects.exists()


# --- cross-JWT confusion (RFC 9101 §10.8, RFC 8725 §3.11) -------------------------------------


def _request_object(client_id: str, key: ECKey, typ: str | None) -> str:
    """A request object as a relying party sends it through the browser (RFC 9101 §5.1): signed
    by the same key as its client assertions, with ``iss``, ``aud`` and, as some libraries add,
    ``sub`` and ``jti``."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": django_settings.IDP_ISSUER, "iat": now, "exp": now + 60,
              "jti": str(uuid.uuid4()), "client_id": client_id, "response_type": "code", "scope": "openid",
              "redirect_uri": "https://rp.example/cb", "state": "s1"}
    header = {"alg": "ES256", "kid": "k1"} | ({"typ": typ} if typ else {})
    return jose_jwt.encode(header, claims, key, algorithms=["ES256"])


@pytest.mark.parametrize("typ", [None, "oauth-authz-req+jwt"])
def test_a_request_object_seen_in_the_browser_is_no_client_assertion(typ):
    """A request object travels through the browser; taken from there, it must not
    authenticate its client at the token endpoint."""
    client, key = jwt_client()
    data = with_assertion(ENDPOINTS["token"], _request_object(client.client_id, key, typ))
    assert_invalid_client(form_post(HttpClient(), reverse("token"), data))
    assert last_error_event().details["auth_failure"] == "bad_assertion"
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("typ", ["JWT", "jwt", "client-authentication+jwt", "application/client-authentication+jwt"])
def test_a_client_assertion_may_be_typed_jwt_or_client_authentication(typ):
    client, key = jwt_client()
    now = int(time.time())
    claims = {"iss": client.client_id, "sub": client.client_id, "aud": issuer_url("/token"), "iat": now,
              "exp": now + 60, "jti": str(uuid.uuid4())}
    signed = jose_jwt.encode({"alg": "ES256", "kid": "k1", "typ": typ}, claims, key, algorithms=["ES256"])
    assert form_post(HttpClient(), reverse("token"), with_assertion(ENDPOINTS["token"], signed)).status_code == 200


def _nested_jws(depth: int, where: str) -> str:
    """A compact JWS whose header or payload is JSON nested ``depth`` deep (Python's parser
    gives up with RecursionError near 1000)."""
    deep = base64.urlsafe_b64encode(b"[" * depth).rstrip(b"=").decode()
    header = base64.urlsafe_b64encode(b'{"alg":"ES256","kid":"k1"}').rstrip(b"=").decode()
    return f"{deep}.e30.AAAA" if where == "header" else f"{header}.{deep}.AAAA"


@pytest.mark.parametrize("where", ["header", "payload"])
@pytest.mark.parametrize("named", [True, False])
def test_an_assertion_nested_too_deep_is_invalid_client_not_500(where, named):
    """Unauthenticated input: the assertion is parsed to find the client before anything else."""
    client, _ = jwt_client()
    data = {**ENDPOINTS["token"], **({"client_id": client.client_id} if named else {})}
    assert_invalid_client(form_post(HttpClient(), reverse("token"), with_assertion(data, _nested_jws(3000, where))))
    assert last_error_event().details["auth_failure"] == "bad_assertion"
    assert not AccessToken.objects.exists()
