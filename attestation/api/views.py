"""JSON API of the attestation app: the challenge endpoint.

``POST /attestation/challenge`` with ``{client_id, purpose}`` (JSON or form) returns
``{"attestation_challenge", "purpose", "expires_in"}`` and the same value in the
``OAuth-Client-Attestation-Challenge`` header (draft-ietf-oauth-attestation-based-client-auth,
challenge endpoint). Errors are ``{"error", "error_description"}`` bodies (``core.api_errors``).
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from clients.models import Client
from core import rates
from core.api_errors import ApiError, ApiErrorCode, ApiErrorSerializer
from core.client_address import source_key
from core.events import client_ip

from ..app_settings import app_settings
from ..flows.challenges import issue_challenge, refuse_for_rate
from ..oauth_errors import CHALLENGE_HEADER
from .serializers import ChallengeRequestSerializer, ChallengeResponseSerializer


class ChallengeThrottle(BaseThrottle):
    """Per-source rate of challenge issue (``ATTESTATION_CHALLENGE_RATE``), counted as the
    OAuth endpoints' rates are (``core.rates``): one atomic increment per request, so a burst
    of parallel requests admits exactly the limit (DRF's own throttle reads its history, then
    writes it back, and lets a burst through). The source is the client's address behind
    trusted proxies (``core.client_address``; IPv6 by /64), not DRF's default, the whole
    ``X-Forwarded-For`` value, which any client can vary. A cache that cannot count refuses
    (503, ``core.outage``)."""

    def __init__(self) -> None:
        self.retry_after: int | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        key = f"vigil:challenge-rate:{source_key(client_ip(request._request))}"
        now = timezone.now()
        self.retry_after = rates.exceeded(key, app_settings.CHALLENGE_RATE, now)
        if self.retry_after is None:
            rates.kept_unless_outage(key, app_settings.CHALLENGE_RATE, now)
        return self.retry_after is None

    def wait(self) -> float | None:
        return self.retry_after


class ChallengeView(APIView):
    """Issue a single-use attestation challenge for an OAuth client."""

    throttle_classes = [ChallengeThrottle]

    def throttled(self, request: Request, wait: float | None) -> NoReturn:
        refuse_for_rate(request._request, wait)
        super().throttled(request, wait)  # type: ignore[arg-type]  # DRF passes None (no wait known); stubs say float

    @extend_schema(
        request=ChallengeRequestSerializer,
        responses={200: ChallengeResponseSerializer, 400: ApiErrorSerializer, 401: ApiErrorSerializer,
                   429: ApiErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = ChallengeRequestSerializer(data=request.data)
        if not serializer.is_valid():
            field = next(iter(serializer.errors))
            raise ApiError(ApiErrorCode.INVALID_REQUEST, f"{field}: {serializer.errors[field][0]}")
        data = serializer.validated_data
        client = Client.objects.active().filter(client_id=data["client_id"]).first()
        if client is None:
            raise ApiError(ApiErrorCode.INVALID_CLIENT, "unknown or inactive client", status.HTTP_401_UNAUTHORIZED)
        issued = issue_challenge(client, data["purpose"])
        body = {"attestation_challenge": issued.value, "purpose": issued.purpose, "expires_in": issued.expires_in}
        response = Response(body, status=status.HTTP_200_OK)
        response[CHALLENGE_HEADER] = issued.value
        response["Cache-Control"] = "no-store"
        return response
