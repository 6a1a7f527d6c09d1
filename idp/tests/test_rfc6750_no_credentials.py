"""RFC 6750 §3.1 at our resource endpoints: "If the request lacks any authentication
information (e.g., the client was unaware that authentication is necessary or attempted
using an unsupported authentication method), the resource server SHOULD NOT include an
error code or other error information."

Such a request (no token at all, or only another scheme) is a 401 whose challenges name our
schemes and nothing else: ``Bearer realm="<issuer>"`` and RFC 9449 §7.1's ``DPoP`` with the
proof algorithms we accept; the JSON body is an empty object. It is still on record
(``resource.token_refused``, reason ``no_token``). A request that did send a token in one of
our schemes keeps its error (RFC 6750 §3.1 ``invalid_request`` / ``invalid_token``)."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.urls import reverse

from core.events import EventType
from core.models import SecurityEvent
from sessions.models import AccessToken, DeviceSession, RefreshToken

from .conftest import form_post

pytestmark = pytest.mark.django_db

ISSUER = settings.IDP_ISSUER


def _expected_challenge(algs: str = "ES256 RS256 PS256 EdDSA") -> str:
    return f'Bearer realm="{ISSUER}", DPoP realm="{ISSUER}", algs="{algs}"'


def _refusals() -> list[tuple[str, str, str]]:
    events = SecurityEvent.objects.filter(event_type=EventType.RESOURCE_TOKEN_REFUSED).order_by("pk")
    return [(e.reason, e.outcome, e.details["detail"]) for e in events]


def _rows() -> tuple[list[Any], ...]:
    return (list(AccessToken.objects.values_list("jti", "revoked_at")),
            list(RefreshToken.objects.values_list("pk", "revoked_at", "rotated_at")),
            list(DeviceSession.objects.values_list("pk", "status")))


def _userinfo(form: dict[str, str] | None, **headers: Any) -> Any:
    """GET, or a form-encoded POST (RFC 6750 §2.2) of ``form``."""
    if form is None:
        return HttpClient().get(reverse("userinfo"), **headers)
    return form_post(HttpClient(), reverse("userinfo"), form, **headers)


ANONYMOUS: dict[str, tuple[dict[str, str] | None, dict[str, str], str]] = {
    "GET without a token": (None, {}, "no_token"),
    "POST without a token": ({"scope": "openid"}, {}, "no_token"),
    "POST with an empty access_token": ({"access_token": ""}, {}, "no_token"),
    "Basic credentials": (None, {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"}, "unsupported_scheme"),
    "another scheme": (None, {"HTTP_AUTHORIZATION": "Negotiate abc"}, "unsupported_scheme"),
}


@pytest.mark.parametrize("case", ANONYMOUS)
def test_a_request_without_our_authentication_gets_challenges_without_an_error(case: str, tokens: Any) -> None:
    form, headers, detail = ANONYMOUS[case]
    before = _rows()
    response = _userinfo(form, **headers)
    assert response.status_code == 401
    assert response.json() == {}
    assert response["WWW-Authenticate"] == _expected_challenge()
    assert "no-store" in response["Cache-Control"]
    assert _refusals() == [("no_token", "denied", detail)]
    assert _rows() == before  # nothing judged, nothing revoked


def test_the_dpop_challenge_lists_the_algorithms_we_accept(settings: Any) -> None:
    settings.SESSIONS_DPOP_ALGS = ["ES256", "EdDSA"]
    response = HttpClient().get(reverse("userinfo"))
    assert response["WWW-Authenticate"] == _expected_challenge("ES256 EdDSA")


def test_the_challenges_parse_as_two_schemes_without_error_parameters() -> None:
    """RFC 9110 §11.6.1: several challenges in one field; ours carry only realm and algs."""
    value = HttpClient().get(reverse("userinfo"))["WWW-Authenticate"]
    bearer, dpop = value.split(", DPoP ")
    assert bearer == f'Bearer realm="{ISSUER}"'
    params = dict(part.split("=", 1) for part in dpop.split(", "))
    assert set(params) == {"realm", "algs"}
    assert {"error", "error_description", "error_uri"}.isdisjoint(params)


@pytest.mark.parametrize("header, form, status, error", [
    ("Bearer not.a.token", None, 401, "invalid_token"),
    ("DPoP not.a.token", None, 401, "invalid_token"),
    (None, "not.a.token", 401, "invalid_token"),
    ("Bearer", None, 400, "invalid_request"),
    ("Bearer a", "b", 400, "invalid_request"),
])
def test_a_request_that_sent_a_token_keeps_its_error(header: str | None, form: str | None, status: int,
                                                     error: str) -> None:
    """Authentication information was sent: RFC 6750 §3.1's codes, in the challenge and the body."""
    extra: dict[str, Any] = {"HTTP_AUTHORIZATION": header} if header else {}
    response = _userinfo(None if form is None else {"access_token": form}, **extra)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert f'error="{error}"' in response["WWW-Authenticate"]
    assert [(reason, outcome) for reason, outcome, _ in _refusals()] == [(error, "denied")]


def test_a_valid_token_is_still_served(tokens: Any) -> None:
    response = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert response.status_code == 200 and "WWW-Authenticate" not in response
    assert _refusals() == []
