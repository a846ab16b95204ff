"""Refuse request bodies larger than any we accept, before anything reads them."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class RequestBodyLimitMiddleware:
    """413 for a declared body over DATA_UPLOAD_MAX_MEMORY_SIZE (the upload limit plus room for
    the form fields).

    Django applies that setting to form fields only, never to uploaded files, and DRF's JSON
    parser reads the stream without it: without this check a client could make a worker read (and
    spool to disk) any number of bytes before the upload's own size check runs. Bodies without a
    Content-Length (chunked) are never read by Django at all.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0  # Django reads no body at all then
        if limit is not None and declared > limit:
            return JsonResponse(
                {"error": f"The request body is {declared} bytes; the limit is {limit} bytes."},
                status=413,
            )
        return self.get_response(request)
