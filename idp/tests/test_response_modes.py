"""Response modes at the authorization endpoint: ``query`` (RFC 6749 §4.1.2), ``fragment``
(OAuth 2.0 Multiple Response Type Encoding Practices §2.1) and ``form_post`` (OAuth 2.0
Form Post Response Mode §2), for successes and errors; unknown modes are refused."""

from __future__ import annotations

import base64
import hashlib
import re
from html import unescape
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from clients.flows.registration import register_client
from core.models import SecurityEvent
from sessions.models import AuthorizationCode

from .conftest import MOBILE_REDIRECT, authorize_params, exchange, query_of

pytestmark = pytest.mark.django_db

WEB_REDIRECT = "https://rp.example/cb?tenant=7"


@pytest.fixture
def web_client(db):
    return register_client(name="Web RP", public=False, redirect_uris=[WEB_REDIRECT], first_party=True,
                           scopes=["openid", "profile", "email"])


def _get(http, params):
    return http.get(f"{reverse('authorize')}?{urlencode(params)}")


def _web_params(registered, pkce, **extra):
    return authorize_params(registered.client.client_id, pkce, **{"redirect_uri": WEB_REDIRECT, "scope": "openid", **extra})


def form_of(page) -> tuple[str, list[tuple[str, str]]]:
    """The action and fields of the form_post page, as a browser would submit them."""
    html = page.content.decode()
    found = re.search(r'<form id="vigil-form-post" method="post" action="([^"]*)"', html)
    assert found is not None
    action = unescape(found.group(1))
    fields = [(unescape(n), unescape(v)) for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', html)]
    return action, fields


def test_form_post_success_posts_code_state_iss_to_the_redirect_uri(browser, web_client, pkce, settings):
    params = _web_params(web_client, pkce, response_mode="form_post")
    page = _get(browser, params)
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert "Location" not in page
    action, fields = form_of(page)
    assert action == WEB_REDIRECT  # exactly the registered URI, its own query kept
    values = dict(fields)
    assert [n for n, _ in fields] == ["code", "state", "iss"]
    assert values["state"] == params["state"] and values["iss"] == settings.IDP_ISSUER
    assert AuthorizationCode.objects.get().code_hash == hashlib.sha256(values["code"].encode()).digest()
    assert "no-store" in page["Cache-Control"] and page["Referrer-Policy"] == "no-referrer"
    assert SecurityEvent.objects.filter(event_type="oauth.authorized").get().details["response_mode"] == "form_post"
    basic = base64.b64encode(f"{web_client.client.client_id}:{web_client.secret}".encode()).decode()
    token = exchange(HttpClient(), values["code"], pkce, web_client.client.client_id, redirect_uri=WEB_REDIRECT,
                     HTTP_AUTHORIZATION=f"Basic {basic}")
    assert token.status_code == 200, token.content


def test_form_post_page_script_is_allowed_by_hash_only(browser, web_client, pkce):
    page = _get(browser, _web_params(web_client, pkce, response_mode="form_post"))
    csp = page["Content-Security-Policy"]
    found = re.search(r"<script>(.*?)</script>", page.content.decode(), re.S)
    assert found is not None
    script = found.group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    found = re.search(r"script-src ([^;]*)", csp)
    assert found is not None
    script_src = found.group(1)
    assert script_src == f"'sha256-{digest}'"  # no 'unsafe-inline', no 'self', nothing else
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "<noscript>" in page.content.decode() and '<button type="submit">' in page.content.decode()


def test_form_post_escapes_the_values(browser, web_client, pkce):
    page = _get(browser, _web_params(web_client, pkce, response_mode="form_post", state='"><script>x</script>'))
    html = page.content.decode()
    assert "<script>x</script>" not in html
    assert dict(form_of(page)[1])["state"] == '"><script>x</script>'


def test_form_post_error_is_posted_too(client, web_client, pkce):
    params = _web_params(web_client, pkce, response_mode="form_post", prompt="none")
    page = _get(client, params)
    assert page.status_code == 200
    action, fields = form_of(page)
    values = dict(fields)
    assert action == WEB_REDIRECT and values["error"] == "login_required" and values["state"] == params["state"]


def test_form_post_never_posts_to_an_unregistered_uri(browser, web_client, pkce):
    page = _get(browser, _web_params(web_client, pkce, response_mode="form_post", redirect_uri="https://evil.example/cb"))
    assert page.status_code == 400 and b"vigil-form-post" not in page.content and "Location" not in page


def test_form_post_needs_a_web_redirect_uri(browser, mobile_client, pkce):
    response = _get(browser, authorize_params(mobile_client.client.client_id, pkce, response_mode="form_post"))
    assert response.status_code == 302 and response["Location"].startswith(MOBILE_REDIRECT + "?")
    assert query_of(response["Location"])["error"] == "invalid_request"
    assert not AuthorizationCode.objects.exists()


def test_fragment_success(browser, mobile_client, pkce, settings):
    params = authorize_params(mobile_client.client.client_id, pkce, response_mode="fragment")
    response = _get(browser, params)
    assert response.status_code == 302
    parts = urlsplit(response["Location"])
    assert f"{parts.scheme}:{parts.path}" == MOBILE_REDIRECT and parts.query == ""
    values = dict(parse_qsl(parts.fragment))
    assert set(values) == {"code", "state", "iss"} and values["iss"] == settings.IDP_ISSUER
    assert exchange(HttpClient(), values["code"], pkce, mobile_client.client.client_id).status_code == 200


def test_fragment_error(client, mobile_client, pkce):
    response = _get(client, authorize_params(mobile_client.client.client_id, pkce, response_mode="fragment", prompt="none"))
    values = dict(parse_qsl(urlsplit(response["Location"]).fragment))
    assert values["error"] == "login_required" and "?" not in response["Location"]


def test_fragment_keeps_the_registered_query(browser, web_client, pkce):
    response = _get(browser, _web_params(web_client, pkce, response_mode="fragment"))
    assert response["Location"].startswith(WEB_REDIRECT + "#code=")


def test_explicit_query_mode(browser, mobile_client, pkce):
    response = _get(browser, authorize_params(mobile_client.client.client_id, pkce, response_mode="query"))
    assert "code" in query_of(response["Location"])


@pytest.mark.parametrize("mode", ["jwt", "query.jwt", "form_post.jwt", "FORM_POST", "web_message", "fragment "])
def test_unknown_response_mode_is_invalid_request_in_the_query(browser, mobile_client, pkce, mode):
    params = authorize_params(mobile_client.client.client_id, pkce, response_mode=mode)
    response = _get(browser, params)
    assert response.status_code == 302
    query = query_of(response["Location"])
    assert query["error"] == "invalid_request" and query["state"] == params["state"]
    assert "response_mode" in query["error_description"]
    assert not AuthorizationCode.objects.exists()


def test_authorize_pages_carry_the_strict_csp(client, service_client, pkce, user):
    from .conftest import PASSWORD

    client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    params = authorize_params(service_client.client.client_id, pkce, redirect_uri="https://service.example.com/callback")
    consent = _get(client, params)
    assert consent.status_code == 200 and "script-src 'self'" in consent["Content-Security-Policy"]
    error = _get(client, authorize_params("nope", pkce))
    assert error.status_code == 400 and "frame-ancestors 'none'" in error["Content-Security-Policy"]
