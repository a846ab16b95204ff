"""API-wide pieces: the error format, pagination, and content negotiation for file downloads."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Errors as `{"error": "<readable sentence>", "fields": {...}?}`, DRF's status codes."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError) and isinstance(response.data, dict):
        fields = response.data
        first_field, first_errors = next(iter(fields.items()))
        first = first_errors[0] if isinstance(first_errors, list) else first_errors
        label = "" if first_field == "non_field_errors" else f"{first_field}: "
        response.data = {"error": f"{label}{first}", "fields": fields}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"error": str(response.data["detail"])}
    elif isinstance(response.data, list):
        response.data = {"error": " ".join(str(item) for item in response.data)}
    return response


class NewestFirstPagination(CursorPagination):
    """Cursor pagination: stable under inserts and no COUNT(*) over large tables."""

    ordering = ("-created_at", "-id")
    page_size_query_param = "pageSize"
    max_page_size = 200


class FirstRendererNegotiation(BaseContentNegotiation):
    """Always the view's first renderer (JSON), whatever the client's Accept header: for views
    whose success is a file (an HttpResponse of its own type) and whose errors stay JSON, where
    DRF's negotiation would answer `Accept: application/pdf` with 406."""

    def select_parser(self, request: Any, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type
