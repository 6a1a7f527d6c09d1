"""Property-based, on headers: odd Authorization values (Basic over arbitrary bytes, Bearer,
DPoP), DPoP proof garbage and odd Content-Types never make /token, /introspect, /revoke or
/userinfo fail with a 5xx; every refusal is an RFC 6749 §5.2 / RFC 6750 §3 JSON body (at
/userinfo without a token in our schemes: an empty object, RFC 6750 §3.1), and a
401 names its scheme in ``WWW-Authenticate`` (RFC 6749 §5.2, RFC 6750 §3, RFC 9449 §7.1)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions.models import AccessToken

pytestmark = pytest.mark.django_db

FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])

HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60)
JWT_LIKE = st.lists(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/", max_size=40),
                    min_size=1, max_size=4).map(".".join)


def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode("ascii")


FORM_PARTS = st.text(alphabet=st.characters(codec="utf-8"), max_size=20) | st.sampled_from(["%00", "%", "%zz", "%ff", "+", ":"])
basic_credentials = st.one_of(
    st.binary(max_size=40).map(_basic),  # arbitrary bytes: invalid UTF-8, no colon, many colons...
    st.tuples(st.text(max_size=20), st.text(max_size=20)).map(lambda p: _basic(f"{p[0]}:{p[1]}".encode("utf-8", "surrogatepass"))),
    st.tuples(FORM_PARTS, FORM_PARTS).map(lambda p: _basic(f"{p[0]}:{p[1]}".encode("utf-8", "surrogatepass"))),
    st.tuples(st.sampled_from(["Basic", "basic", "BASIC"]), st.binary(max_size=48)).map(  # raw bytes, controls too
        lambda p: f"{p[0]} {p[1].decode('latin-1')}".replace("\r", "").replace("\n", "")),
    st.sampled_from(["mobile:%ZZ", "%41:%42", "a:b:c", ":", "é:é"]).map(lambda s: _basic(s.encode("latin-1"))),
    HEADER_TEXT.map(lambda s: "Basic " + s),  # not base64 at all
    st.sampled_from(["Basic", "Basic ", "basic Og==", "BASIC Og=="]),
)
authorization = st.one_of(
    basic_credentials,
    HEADER_TEXT.map(lambda s: "Bearer " + s),
    JWT_LIKE.map(lambda s: "Bearer " + s),
    JWT_LIKE.map(lambda s: "DPoP " + s),
    st.sampled_from(["Bearer", "DPoP", "Bearer  ", "Negotiate abc", "x", "Bearer a b"]),
    HEADER_TEXT,
)
dpop_header = st.one_of(HEADER_TEXT, JWT_LIKE, st.sampled_from(["", ",", "a.b.c, d.e.f", "e30.e30.", "eyJhbGciOiJub25lIn0.e30."]))
content_type = st.one_of(
    st.sampled_from([
        "application/x-www-form-urlencoded; charset=utf-16",
        "application/x-www-form-urlencoded; charset=bogus",
        "application/x-www-form-urlencoded; charset=",
        'application/x-www-form-urlencoded; charset="utf-8"; q=1',
        "application/x-www-form-urlencoded;;;",
        "APPLICATION/X-WWW-FORM-URLENCODED",
        "application/x-www-form-urlencoded; boundary=x",
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "application/json",
        "text/plain; charset=latin-1",
        "",
    ]),
    HEADER_TEXT.map(lambda s: "application/x-www-form-urlencoded; charset=" + s),
)
FORMS = {
    "token": {"grant_type": "client_credentials", "client_id": "mobile-app"},
    "introspect": {"token": "abc", "token_type_hint": "access_token"},
    "revoke": {"token": "abc"},
    "userinfo": {"access_token": "abc"},
}


def _request(name: str, method: str, headers: dict[str, str | None], ctype: str | None, body: bytes | None = None) -> Any:
    data = body if body is not None else urlencode(FORMS[name]).encode()
    extra: dict[str, Any] = {k: v for k, v in headers.items() if v is not None}
    http = HttpClient()
    if method == "GET":
        return http.get(reverse(name), **extra)
    return http.generic("POST", reverse(name), data=data, content_type=ctype or "", **extra)


def assert_rfc_error(response: Any) -> None:
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
        payload = response.json()
        assert isinstance(payload.get("error"), str) and payload["error"], payload
        assert set(payload) <= {"error", "error_description", "error_uri", "state"}, payload
    if response.status_code == 401:
        assert response.get("WWW-Authenticate"), "a 401 names its authentication scheme"


@pytest.mark.parametrize("name", ["token", "introspect", "revoke"])
@settings(FUZZ, max_examples=80)  # Basic is one of several header shapes here: more examples
@given(auth=authorization, dpop=st.none() | dpop_header, ctype=st.none() | content_type)
def test_client_endpoints_answer_odd_headers_with_rfc_errors(name: str, auth: str, dpop: str | None, ctype: str | None,
                                                              mobile_client: Any, service_client: Any) -> None:
    headers = {"HTTP_AUTHORIZATION": auth, "HTTP_DPOP": dpop}
    response = _request(name, "POST", headers, ctype or "application/x-www-form-urlencoded")
    assert_rfc_error(response)
    assert response.status_code in (400, 401)  # no header here authenticates anyone
    if response.status_code == 401:
        assert response.json()["error"] == "invalid_client"
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("method", ["GET", "POST"])
@FUZZ
@given(auth=st.none() | authorization, dpop=st.none() | dpop_header, ctype=st.none() | content_type)
def test_userinfo_answers_odd_headers_with_rfc6750_errors(method: str, auth: str | None, dpop: str | None,
                                                          ctype: str | None) -> None:
    headers = {"HTTP_AUTHORIZATION": auth, "HTTP_DPOP": dpop}
    response = _request("userinfo", method, headers, ctype)
    assert response.status_code in (400, 401)  # no token here is valid
    if response.status_code == 401 and response.json() == {}:  # RFC 6750 §3.1: no token in our schemes
        assert response["Content-Type"].startswith("application/json")
        assert "error" not in response["WWW-Authenticate"]
    else:
        assert_rfc_error(response)
    if response.status_code == 401 or response.get("WWW-Authenticate"):  # RFC 6750 §3: MUST on 401, MAY else
        assert response["WWW-Authenticate"].split(" ")[0] in {"Bearer", "DPoP"}


@pytest.mark.parametrize("name", ["token", "introspect", "revoke"])
@FUZZ
@given(ctype=content_type, body=st.binary(max_size=80))
def test_odd_content_types_and_bodies_are_refused_cleanly(name: str, ctype: str, body: bytes,
                                                          service_client: Any) -> None:
    response = _request(name, "POST", {}, ctype, body=body)
    assert_rfc_error(response)
    assert response.status_code in (400, 401)


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded; charset=utf-16",
                                   "application/x-www-form-urlencoded; charset=bogus", ""])
def test_token_with_an_odd_charset_or_none_is_a_json_error(ctype: str, service_client: Any) -> None:
    """A deterministic reading of the property above: never a 500, always RFC 6749 §5.2 JSON."""
    secret = base64.b64encode(f"{service_client.client.client_id}:{service_client.secret}".encode()).decode()
    response = _request("token", "POST", {"HTTP_AUTHORIZATION": f"Basic {secret}"}, ctype,
                        body=urlencode({"grant_type": "client_credentials"}).encode())
    assert_rfc_error(response)
    assert response.status_code == 400 if ctype == "" else response.status_code in (200, 400)
