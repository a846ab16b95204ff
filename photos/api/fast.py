"""The API's two hottest requests without DRF and the ORM: polling a photo, enqueueing one.

Clients poll `GET /api/photos/{id}` every second or two per photo and enqueue in bursts; through
DRF (request wrapping, authentication classes, serializers, content negotiation) and ORM-built SQL
each request cost ~6 ms of CPU, against ~1 ms for the same work here (docs/benchmarks.md,
"Changes made for speed"). Each function answers only the common case: an `Authorization:
Token …` header of an active user and a well-formed request. For anything else it returns None and
the DRF view answers as before (session authentication, every error, every other format), so
errors keep one implementation. The answers are the DRF views' byte for byte (tests compare them).
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from ai_engine.types import ROOM_TYPES
from infra.throttling import caller_ident, throttle_wait_s
from photos.models import Photo, Project
from photos.services.queueing import Owner, photo_enqueue_for_owner

NO_SUCH_PHOTO = "No such photo."
ENQUEUE_FIELDS = frozenset({"photoId", "roomType", "force", "userId"})
_ROOM_TYPES = frozenset(ROOM_TYPES)
# The columns PhotoSerializer shows, in its order (the JSON keys are beside them in _poll_body).
_PHOTO_COLUMNS = (
    "id",
    "project_id",
    "status",
    "room_type",
    "analysis",
    "error_code",
    "error_message",
    "attempts",
    "processed_at",
    "created_at",
    "updated_at",
)


# One round trip authenticates and reads: the photo, if the token is an active user's and the
# photo is in one of that user's projects.
_POLL = """
SELECT {columns}
FROM {photo} AS ph
JOIN {project} AS pr ON pr.id = ph.project_id
JOIN {token} AS t ON t.user_id = pr.owner_id
JOIN {user} AS u ON u.id = t.user_id
WHERE ph.id = %s AND t.key = %s AND u.is_active
"""
_TOKEN_USER = """
SELECT u.id FROM {token} AS t JOIN {user} AS u ON u.id = t.user_id
WHERE t.key = %s AND u.is_active
"""


@functools.cache
def _statement(template: str, vendor: str) -> str:
    """`template` with its table and column names quoted, built once per process (the hot path
    should not format SQL); `vendor` is part of the key because the quoting is the database's."""
    quote = connection.ops.quote_name
    return template.format(
        columns=", ".join(f"ph.{quote(column)}" for column in _PHOTO_COLUMNS),
        photo=quote(Photo._meta.db_table),
        project=quote(Project._meta.db_table),
        token=quote(Token._meta.db_table),
        user=quote(get_user_model()._meta.db_table),
    )


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _token_key(request: HttpRequest) -> str | None:
    """The key of an `Authorization: Token <key>` header, parsed as DRF's TokenAuthentication
    does; None when there is no such header (DRF decides what else is there)."""
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(parts) != 2 or parts[0].lower() != "token":
        return None
    return parts[1]


def _accepts_json(request: HttpRequest) -> bool:
    """What DRF's content negotiation would answer with JSON (it is the only renderer)."""
    accept = request.META.get("HTTP_ACCEPT", "")
    return not accept or "application/json" in accept or "*/*" in accept


def _iso(value: datetime | None) -> str | None:
    """A datetime as DRF's DateTimeField shows it: ISO 8601 in the current time zone, UTC as Z."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _json(body: dict[str, Any], status: int, *, allow: str) -> HttpResponse:
    # DRF's JSONRenderer: compact, UTF-8, no NaN.
    content = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    response = HttpResponse(content.encode(), status=status, content_type="application/json")
    response["Allow"] = allow
    response["Vary"] = "Accept"
    return response


def photo_poll(request: HttpRequest, photo_id: str) -> HttpResponse | None:
    """`GET /api/photos/{id}` with a token: `{"photo": {...}}`, or None (the DRF view answers)."""
    if (
        connection.vendor != "postgresql"  # datetimes and JSON come back as text on SQLite
        or request.method != "GET"
        or request.META.get("QUERY_STRING")
        or not _accepts_json(request)
    ):
        return None
    key, pk = _token_key(request), _uuid(photo_id)
    if key is None or pk is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_statement(_POLL, connection.vendor), [pk, key])
        row = cursor.fetchone()
    if row is None:
        return None  # a wrong token, someone else's photo, no photo: DRF says which
    return _json({"photo": _poll_body(row)}, 200, allow="GET, HEAD, OPTIONS")


def _poll_body(row: tuple[Any, ...]) -> dict[str, Any]:
    values = dict(zip(_PHOTO_COLUMNS, row, strict=True))
    analysis = values["analysis"]
    return {
        "id": str(values["id"]),
        "projectId": str(values["project_id"]),
        "status": values["status"],
        "roomType": values["room_type"],
        # jsonb arrives as text (Django registers a text loader; JSONField parses it).
        "analysis": json.loads(analysis) if isinstance(analysis, str) else analysis,
        "errorCode": values["error_code"],
        "errorMessage": values["error_message"],
        "attempts": values["attempts"],
        "processedAt": _iso(values["processed_at"]),
        "createdAt": _iso(values["created_at"]),
        "updatedAt": _iso(values["updated_at"]),
    }


def _token_user_id(key: str) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(_statement(_TOKEN_USER, connection.vendor), [key])
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def photo_enqueue(request: HttpRequest) -> HttpResponse | None:
    """`POST /api/photos/enqueue` with a token and a JSON body: 202 or 404, or None (the DRF view
    answers: session authentication, a body it must reject, a throttled caller, a bad token)."""
    if (
        request.method != "POST"
        or request.content_type != "application/json"
        or not _accepts_json(request)
    ):
        return None
    key = _token_key(request)
    if key is None:
        return None
    try:
        data = json.loads(request.body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not data.keys() <= ENQUEUE_FIELDS:
        return None
    photo_id, room_type, force = data.get("photoId"), data.get("roomType"), data.get("force", False)
    if (
        not isinstance(photo_id, str)
        or (
            room_type is not None
            and (not isinstance(room_type, str) or room_type not in _ROOM_TYPES)
        )
        or not isinstance(force, bool)
        or not isinstance(data.get("userId", ""), str | None)
    ):
        return None
    pk = _uuid(photo_id)
    if pk is None:
        return None
    # Counted by token before the token is checked (DRF counts token requests the same way):
    # the check is part of the enqueue's UPDATE, one round trip instead of two. Over the rate,
    # DRF counts the request again (the count only grows within a window, so it refuses too) and
    # answers 429 with its own, translated, message; so it does for a token it does not know.
    ident = caller_ident(user_pk=None, token_key=key)
    wait_s = throttle_wait_s(scope="enqueue", rate_setting="THROTTLE_ENQUEUE_RATE", ident=ident)
    if wait_s is not None:
        return None
    try:
        result = photo_enqueue_for_owner(
            owner=Owner(token_key=key), photo_id=pk, room_type=room_type, force=force
        )
    except Photo.DoesNotExist:
        if _token_user_id(key) is None:
            return None  # not a valid token: DRF answers 401
        return _json({"error": NO_SUCH_PHOTO}, 404, allow="POST, OPTIONS")
    body = {
        "success": True,
        "status": result.status.value,
        "jobId": Photo(id=pk).job_id,
        "photoId": str(pk),
        "queuePosition": result.queue_position.value,
    }
    return _json(body, 202, allow="POST, OPTIONS")
