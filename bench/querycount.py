"""Counts SQL statements per request and reports them in an ``X-Bench-Queries`` header.

Only the bench enables it (``BENCH_COUNT_QUERIES=1``), in both Vigil's bench settings and
the django-oauth-toolkit baseline, so both are counted the same way. It depends on Django
alone: the baseline imports it from its own virtualenv.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection


class QueryCountMiddleware:
    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        count = 0

        def counter(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
            nonlocal count
            count += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counter):
            response = self.get_response(request)
        response["X-Bench-Queries"] = str(count)
        return response
