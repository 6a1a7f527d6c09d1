"""Logos served from our own origin: always ``image/png`` (bytes Pillow wrote), ``nosniff``,
a sandboxing CSP, cacheable (the pages link them with their hash as ``?v=``)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

from core.http_methods import allow_methods

from .branding import tenant_logo
from .logo import CONTENT_TYPE
from .models import ClientLogo

IMAGE_POLICY = "default-src 'none'; sandbox"


def _image(data: bytes | memoryview, sha256: str) -> HttpResponse:
    response = HttpResponse(bytes(data), content_type=CONTENT_TYPE)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = IMAGE_POLICY
    response["Content-Disposition"] = 'inline; filename="logo.png"'
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    response["ETag"] = f'"{sha256[:32]}"'
    patch_cache_control(response, public=True, max_age=86400)
    return response


@allow_methods("GET")
def client_logo(request: HttpRequest, client_id: str) -> HttpResponse:
    row = ClientLogo.objects.filter(client__client_id=client_id, client__is_active=True).only("image", "sha256").first()
    if row is None:
        raise Http404("no logo")
    return _image(row.image, row.sha256)


@allow_methods("GET")
def tenant_logo_view(request: HttpRequest) -> HttpResponse:
    logo = tenant_logo()
    if logo is None:
        raise Http404("no logo")
    return _image(logo.data, logo.sha256)
