"""HTTP edges found by Schemathesis: methods a view does not allow are 405 with ``Allow``
(before the CSRF check, RFC 9110 §15.5.6); unreadable, oversized and cut-off form bodies
are RFC 6749 §5.2 JSON, never Django's HTML 400 page or a 500;
another Authorization scheme at userinfo is a 401 naming ours (RFC 6750 §3.1)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.conf import settings
from django.test import Client as HttpClient

from core.http_methods import INTERRUPTED, TOO_LARGE, UNREADABLE
from idp.middleware import NUL_REFUSED

pytestmark = pytest.mark.django_db

GET_ONLY = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/jwks.json",
            "/.well-known/ssf-configuration", "/.well-known/assetlinks.json", "/.well-known/apple-app-site-association"]


@pytest.mark.parametrize("method", ["QUERY", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", [*GET_ONLY, "/authorize", "/logout", "/userinfo", "/ssf/receive/x"])
def test_an_unsupported_method_is_405_with_allow_not_a_csrf_page(method: str, path: str) -> None:
    response = HttpClient(enforce_csrf_checks=True).generic(method, path)
    assert response.status_code == 405
    expected = {"GET"} if path in GET_ONLY else {"POST"} if path.startswith("/ssf/") else {"GET", "POST"}
    assert {m.strip() for m in response["Allow"].split(",")} == expected


def test_the_supported_methods_still_pass_the_csrf_check() -> None:
    response = HttpClient(enforce_csrf_checks=True).post("/logout", {"confirm": "yes"})
    assert response.status_code == 403  # the method is allowed, so CSRF still decides


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded; charset=utf-16",
                                          "multipart/form-data", "multipart/form-data; boundary="])
@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke", "/userinfo"])
def test_an_unreadable_form_body_is_an_rfc6749_json_error(path: str, content_type: str) -> None:
    response = HttpClient().generic("POST", path, data=b"grant_type=client_credentials&token=x",
                                    content_type=content_type)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


FORM_PATHS = ["/token", "/introspect", "/revoke", "/userinfo", "/usage"]
# Pages people see (core.outage.wants_html): a refusal there is a readable page, not JSON.
PAGE_PATHS = ["/accounts/login/", "/authorize", "/logout", "/device"]


@pytest.mark.parametrize("path", FORM_PATHS)
def test_a_form_with_too_many_fields_is_an_rfc6749_json_error_not_an_html_page(path: str, caplog: Any) -> None:
    body = "&".join(f"f{i}=x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = HttpClient().post(path, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": TOO_LARGE}
    assert [r.name for r in caplog.records if r.name.startswith("django.security")] == [
        "django.security.TooManyFieldsSent"]


def _too_many_fields() -> str:
    return "&".join(f"f{i}=x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))


@pytest.mark.parametrize("content_type, body, description", [
    ("application/x-www-form-urlencoded", None, TOO_LARGE),
    ("application/x-www-form-urlencoded; charset=utf-16", "username=a&password=b", UNREADABLE),
    ("application/x-www-form-urlencoded", "username=al\x00ice&password=b", NUL_REFUSED),
], ids=["too-many-fields", "not-utf-8", "nul"])
@pytest.mark.parametrize("path", PAGE_PATHS)
def test_a_form_refused_on_a_page_is_a_readable_page_and_changes_nothing(
    path: str, content_type: str, body: str | None, description: str
) -> None:
    """Non-negotiable 5: a page people see answers a form it cannot take with a page that says
    so in words (the cause under "Details"), never JSON; nothing is signed in or recorded."""
    from django.utils.html import escape

    from core.models import SecurityEvent

    browser = HttpClient()
    response = browser.generic("POST", path, data=(body if body is not None else _too_many_fields()).encode(),
                               content_type=content_type, HTTP_ACCEPT="text/html,application/xhtml+xml")
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "This request could not be read" in page and "nothing was done" in page and escape(description) in page
    assert response["Cache-Control"] == "no-store" and "default-src 'none'" in response["Content-Security-Policy"]
    assert settings.SESSION_COOKIE_NAME not in response.cookies and not SecurityEvent.objects.exists()


def test_a_page_refusal_is_translated() -> None:
    response = HttpClient().post("/accounts/login/", _too_many_fields(), content_type="application/x-www-form-urlencoded",
                                 HTTP_ACCEPT_LANGUAGE="de")
    assert response.status_code == 400 and "Diese Anfrage konnte nicht gelesen werden" in response.content.decode()


@pytest.mark.parametrize("path", ["/token", "/accounts/login/"])
def test_a_nul_refused_where_json_is_wanted_is_an_rfc6749_json_error(path: str) -> None:
    """The protocol endpoints, and a script on a page that asks for JSON, get RFC 6749 §5.2."""
    response = HttpClient().post(path, "grant_type=x\x00y", content_type="application/x-www-form-urlencoded",
                                 HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": NUL_REFUSED}


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=b"])
@pytest.mark.parametrize("path", FORM_PATHS)
def test_a_form_body_above_the_upload_limit_is_an_rfc6749_json_error(path: str, content_type: str,
                                                                     settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    if content_type.startswith("multipart"):
        body = b"--b\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n" + b"x" * 2000 + b"\r\n--b--\r\n"
    else:
        body = b"token=" + b"x" * 2000
    response = HttpClient().generic("POST", path, data=body, content_type=content_type)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": TOO_LARGE}


class CutOff(io.RawIOBase):
    """A request body whose client went away after a few bytes (runserver hands the view the
    socket's error)."""

    def __init__(self) -> None:
        self.sent = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.sent:
            raise ConnectionResetError(104, "Connection reset by peer")
        self.sent = True
        buffer[:5] = b"token"
        return 5


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=b"])
@pytest.mark.parametrize("path", FORM_PATHS)
def test_a_body_cut_off_mid_way_is_a_400_not_a_500(path: str, content_type: str) -> None:
    response = HttpClient(raise_request_exception=False).generic(
        "POST", path, data=b"x" * 100, content_type=content_type,
        **{"wsgi.input": io.BufferedReader(CutOff())})  # type: ignore[arg-type]  # a WSGI environ entry
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": INTERRUPTED}


@pytest.mark.parametrize("header", ["Basic Og==", "x", "Negotiate abc", "Token abc"])
def test_userinfo_with_another_scheme_is_401_naming_bearer(header: str) -> None:
    """RFC 6750 §3.1: no error information for a scheme we do not accept (test_rfc6750_no_credentials.py)."""
    response = HttpClient().get("/userinfo", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json() == {}
    assert response["WWW-Authenticate"].startswith("Bearer realm=")
    assert "error" not in response["WWW-Authenticate"]


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "DPoP  "])
def test_userinfo_with_our_scheme_but_no_token_stays_a_400(header: str) -> None:
    response = HttpClient().get("/userinfo", HTTP_AUTHORIZATION=header)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_challenge_schema_refuses_an_empty_client_id(client: Any) -> None:
    response = client.post("/attestation/challenge", {"client_id": "", "purpose": "enroll"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
