"""Shared Signals endpoints: the transmitter configuration (SSF 1.0 §"Transmitter
Configuration Discovery") and the RFC 8935 push endpoint for registered transmitters."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_cache_control
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from core.app_settings import app_settings as idp_settings
from core.events import client_ip
from core.http_methods import allow_methods, raw_body

from . import receiver
from .app_settings import app_settings
from .set_tokens import SetError

SPEC_VERSION = "1_0"
PUSH_DELIVERY = "urn:ietf:rfc:8935"


def configuration() -> dict[str, Any]:
    """Transmitter Configuration Metadata: only what Vigil does. No stream management API
    (receivers are registered by an operator), so no endpoints or authorization schemes."""
    issuer = idp_settings.ISSUER
    return {
        "spec_version": SPEC_VERSION,
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks.json",
        "delivery_methods_supported": [PUSH_DELIVERY],
    }


@allow_methods("GET")
def ssf_configuration(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(configuration())
    patch_cache_control(response, public=True, max_age=3600)
    return response


def _error(error: SetError) -> JsonResponse:
    """RFC 8935 §2.3 error body."""
    return JsonResponse({"err": error.code, "description": error.description}, status=error.status)


@never_cache
@csrf_exempt
@allow_methods("POST")
def receive(request: HttpRequest, slug: str) -> HttpResponse:
    """RFC 8935 §2.2: 202 Accepted with an empty body, or 400 with an error body."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    body = b"" if declared > app_settings.MAX_BODY_BYTES else raw_body(request)  # too large: left unread
    push = receiver.Push(
        slug=slug, body=body, content_type=request.content_type or "",
        authorization=request.META.get("HTTP_AUTHORIZATION", ""), ip=client_ip(request),
        too_large=max(declared, len(body)) > app_settings.MAX_BODY_BYTES,
    )
    try:
        receiver.receive(push)
    except SetError as error:
        return _error(error)
    return HttpResponse(status=202)
