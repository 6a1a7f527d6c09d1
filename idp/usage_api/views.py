"""``POST /usage``: relying services report a user's data volume (docs/risk.md).

Authenticated by client credentials (RFC 6749 §2.3: ``client_secret_basic``,
``client_secret_post`` or ``private_key_jwt`` per RFC 7523 §2.2) through the one Authlib
server; only confidential clients whose risk policy accepts usage reports. Errors are
``{"error", "error_description"}`` bodies (``core.api_errors``).
"""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from django.http import HttpRequest
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import ApiError, ApiErrorCode, ApiErrorSerializer
from core.events import EventType, Outcome, record
from idp.oauth.server import get_server
from risk.usage import UsageError, report_usage

from .serializers import UsageAcceptedSerializer, UsageReportSerializer

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


def authenticate_reporter(request: HttpRequest) -> object:
    server = get_server()
    try:
        return server.authenticate_client(server.create_oauth2_request(request), AUTH_METHODS, endpoint="usage")
    except OAuth2Error as error:
        record(
            EventType.RISK_USAGE_REFUSED,
            outcome=Outcome.DENIED,
            reason=ApiErrorCode.INVALID_CLIENT,
            request=request,
            description=error.description,
        )
        raise ApiError(
            ApiErrorCode.INVALID_CLIENT, "Client authentication failed.", status.HTTP_401_UNAUTHORIZED
        ) from error


class UsageView(APIView):
    """Report the bytes a user moved through your service during a period."""

    @extend_schema(
        operation_id="report_usage",
        request=UsageReportSerializer,
        responses={
            202: UsageAcceptedSerializer,
            400: ApiErrorSerializer,
            401: ApiErrorSerializer,
            403: ApiErrorSerializer,
            404: ApiErrorSerializer,
        },
        examples=[
            OpenApiExample(
                "A day of traffic",
                request_only=True,
                value={
                    "sub": "0b6e5c1e-2f4d-4a8e-9a55-3f1c2d7e9b10",
                    "bytes": 52428800,
                    "period_start": "2026-11-28T00:00:00Z",
                    "period_end": "2026-11-28T12:00:00Z",
                    "report_id": "r-42",
                },
            )
        ],
        description="Authenticate with the client's credentials (client_secret_basic, client_secret_post or "
        "private_key_jwt). Only confidential clients whose risk policy accepts usage reports may call it.",
    )
    def post(self, request: Request) -> Response:
        client = authenticate_reporter(request._request)
        serializer = UsageReportSerializer(data=request.data)
        if not serializer.is_valid():
            field, errors = next(iter(serializer.errors.items()))
            raise ApiError(ApiErrorCode.INVALID_REQUEST, f"{field}: {errors[0]}")
        data = serializer.validated_data
        try:
            result = report_usage(
                client=client,
                sub=data.get("sub") or "",
                sid=data.get("sid") or "",
                amount=data["bytes"],
                start=data["period_start"],
                end=data["period_end"],
                report_id=data.get("report_id") or "",
                request=request._request,
                now=timezone.now(),
            )
        except UsageError as error:
            raise ApiError(error.code, error.description, error.status) from error
        body = {"accepted": True, "day": result.day, "duplicate": result.duplicate}
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Cache-Control": "no-store"})
