"""Page-only middleware is skipped for the OAuth endpoints and only for them (core.pages_only,
issue 19): a marked view sees no session, user or page language; every other view does, as
before; and a middleware whose hooks Django calls outside ``__call__`` cannot be made skippable."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.test import Client
from django.test.utils import override_settings
from django.urls import path, reverse
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt

from core import pages_only
from core.pages_only import api_endpoint, is_api_request


def _what_it_saw(request: HttpRequest) -> JsonResponse:
    return JsonResponse({
        "session": hasattr(request, "session"),
        "user": hasattr(request, "user"),
        "messages": hasattr(request, "_messages"),
        "language": translation.get_language(),
    })


marked = api_endpoint(csrf_exempt(_what_it_saw))
unmarked = csrf_exempt(_what_it_saw)

urlpatterns = [path("marked", marked), path("unmarked", unmarked)]


@pytest.fixture
def own_urls():
    with override_settings(ROOT_URLCONF=__name__):
        yield


def _saw(client: Client, url: str) -> dict[str, object]:
    response = client.post(url, "a=1", content_type="application/x-www-form-urlencoded",
                           headers={"accept-language": "de"})
    assert response.status_code == 200
    return json.loads(response.content)


@pytest.mark.django_db
def test_a_marked_view_passes_through_the_page_middleware(own_urls):
    client = Client()
    client.cookies["sessionid"] = "x" * 32
    assert _saw(client, "/marked") == {"session": False, "user": False, "messages": False, "language": settings.LANGUAGE_CODE}


@pytest.mark.django_db
def test_any_other_view_gets_it_as_before(own_urls):
    saw = _saw(Client(), "/unmarked")
    assert saw["session"] and saw["user"] and saw["messages"]
    assert saw["language"] == "de"


@pytest.mark.django_db
def test_the_oauth_endpoints_are_marked_and_pages_are_not():
    def at(url: str) -> bool:
        return is_api_request(Client().request(PATH_INFO=url, REQUEST_METHOD="GET").wsgi_request)

    for name in ("token", "introspect", "revoke", "par", "device-authorization"):
        assert at(reverse(name)), name
    for url in (reverse("authorize"), reverse("accounts:login"), "/admin/", "/no-such-page", reverse("jwks")):
        assert not at(url), url


def test_a_middleware_with_hooks_outside_call_cannot_be_skipped():
    class WithView:
        def process_view(self, *args: object) -> None:
            return None

    with pytest.raises(ImproperlyConfigured, match="process_view"):
        type("Skippable", (pages_only.PagesOnly, WithView), {})


def _tenant_urls(get_response: Callable[[HttpRequest], HttpResponseBase]) -> Callable[[HttpRequest], HttpResponseBase]:
    """A middleware that routes the request by a URL configuration of its own, as Django allows."""
    def middleware(request: HttpRequest) -> HttpResponseBase:
        request.urlconf = "idp.tests.pages_only_tenant_urls"
        return get_response(request)
    return middleware


@pytest.mark.django_db
def test_a_per_request_url_configuration_decides(own_urls):
    """Django routes by ``request.urlconf`` when a middleware set it: so must the skipping, else
    a page there at the path of an endpoint here loses its session and user."""
    with override_settings(MIDDLEWARE=[f"{__name__}._tenant_urls", *settings.MIDDLEWARE]):
        page = _saw(Client(), "/marked")  # the unmarked view, under the request's configuration
        endpoint = _saw(Client(), "/unmarked")
    assert page["session"] and page["user"] and page["messages"] and page["language"] == "de"
    assert endpoint == {"session": False, "user": False, "messages": False, "language": settings.LANGUAGE_CODE}


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "script_name", "page"), [
    ("/unmarked", "/marked", True),  # mounted under a prefix that names an endpoint: still the page
    ("/marked", "/unmarked", False),
    ("/%75nmarked", "", True),  # percent-encoded: decoded before routing, as before skipping
    ("/%6Darked", "", False),
])
def test_the_path_django_routes_by_decides(own_urls, url: str, script_name: str, page: bool):
    """Skipping follows ``path_info``, the path Django routes by: a prefix (``SCRIPT_NAME``) or
    an encoding never makes a page lose its middleware, nor an endpoint gain it."""
    response = Client().post(url, "a=1", content_type="application/x-www-form-urlencoded", SCRIPT_NAME=script_name)
    assert response.status_code == 200
    saw = json.loads(response.content)
    assert (saw["session"], saw["user"], saw["messages"]) == (page, page, page)


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/marked/", "//marked", "/marked%00"])
def test_a_path_near_an_endpoints_is_not_one(own_urls, url: str):
    """A path that does not route to the endpoint gets every page middleware (a 404, or
    CommonMiddleware's slash redirect, answered as for any page)."""
    request = Client().request(PATH_INFO=url, REQUEST_METHOD="GET").wsgi_request
    assert not is_api_request(request)
    assert hasattr(request, "session") and hasattr(request, "user")
