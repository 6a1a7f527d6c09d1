"""One error shape for Vigil's own JSON APIs (not the OAuth endpoints, which use RFC 6749 §5.2).

Body: ``{"error": "<stable code>", "error_description": "<human text>"}``.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """Raise with a stable machine-readable ``code``; subclasses set the HTTP status."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_request"

    def __init__(self, code: str, description: str = "", status_code: int | None = None):
        self.code = code
        self.description = description or code.replace("_", " ")
        if status_code is not None:
            self.status_code = status_code
        super().__init__(self.description, code)


class ApiErrorSerializer(serializers.Serializer):
    """The error body of every Vigil JSON API (for the OpenAPI schema)."""

    error = serializers.CharField(help_text="Stable machine-readable code.")
    error_description = serializers.CharField(help_text="Human-readable explanation.")


_DRF_CODES = {
    exceptions.ParseError: "invalid_request",
    exceptions.ValidationError: "invalid_request",
    exceptions.NotAuthenticated: "invalid_client",
    exceptions.AuthenticationFailed: "invalid_client",
    exceptions.PermissionDenied: "access_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "invalid_request",
    exceptions.Throttled: "slow_down",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApiError):
        return Response({"error": exc.code, "error_description": exc.description}, status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "invalid_request")
    detail = response.data
    if isinstance(detail, dict) and "detail" in detail:
        detail = detail["detail"]
    response.data = {"error": code, "error_description": str(detail)}
    return response
