"""One error shape for Vigil's own JSON APIs (not the OAuth endpoints, which use RFC 6749 §5.2).

Body: ``{"error": "<stable code>", "error_description": "<human text>"}``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiErrorCode(StrEnum):
    """The stable ``error`` codes of Vigil's JSON APIs (``ApiErrorSerializer``; docs/openapi)."""

    INVALID_REQUEST = "invalid_request"
    INVALID_CLIENT = "invalid_client"
    ACCESS_DENIED = "access_denied"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    SLOW_DOWN = "slow_down"
    UNKNOWN_SUBJECT = "unknown_subject"


class ApiError(exceptions.APIException):
    """Raise with a stable machine-readable ``code``; subclasses set the HTTP status."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_code = ApiErrorCode.INVALID_REQUEST

    def __init__(self, code: ApiErrorCode, description: str = "", status_code: int | None = None):
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
    exceptions.ParseError: ApiErrorCode.INVALID_REQUEST,
    exceptions.ValidationError: ApiErrorCode.INVALID_REQUEST,
    exceptions.NotAuthenticated: ApiErrorCode.INVALID_CLIENT,
    exceptions.AuthenticationFailed: ApiErrorCode.INVALID_CLIENT,
    exceptions.PermissionDenied: ApiErrorCode.ACCESS_DENIED,
    exceptions.NotFound: ApiErrorCode.NOT_FOUND,
    exceptions.MethodNotAllowed: ApiErrorCode.METHOD_NOT_ALLOWED,
    exceptions.UnsupportedMediaType: ApiErrorCode.INVALID_REQUEST,
    exceptions.Throttled: ApiErrorCode.SLOW_DOWN,
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApiError):
        return Response({"error": str(exc.code), "error_description": exc.description}, status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), ApiErrorCode.INVALID_REQUEST)
    detail = response.data
    if isinstance(detail, dict) and "detail" in detail:
        detail = detail["detail"]
    # plain strings: the schema view renders YAML, which knows no enum
    response.data = {"error": str(code), "error_description": str(detail)}
    return response
