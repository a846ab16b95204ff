"""Putting photos in the `photo-analyze` queue: exactly one message per request for work."""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from infra.sql import db_value
from photos.models import Photo, Project

logger = logging.getLogger(__name__)


class EnqueueStatus(StrEnum):
    ENQUEUED = "enqueued"
    ALREADY_QUEUED = "already_queued"
    ALREADY_PROCESSING = "already_processing"
    ALREADY_DONE = "already_done"


class QueuePosition(StrEnum):
    WAITING = "waiting"
    ACTIVE = "active"
    DONE = "done"


@dataclass(frozen=True)
class EnqueueResult:
    status: EnqueueStatus
    queue_position: QueuePosition


def photo_send_analyze(*, photo_id: str, delay_ms: int | None = None) -> None:
    """Send the `photo-analyze` message now. A broker failure is logged, not raised: the photo
    keeps `queued_at`, which marks it as owed a message (see README, "Delivery")."""
    from photos.tasks import analyze_photo

    try:
        analyze_photo.send_with_options(args=(str(photo_id),), delay=delay_ms)
    except Exception:
        logger.exception("could not send photo-analyze for photo %s; it stays queued", photo_id)


def photo_send_analyze_on_commit(*, photo_id: str, delay_ms: int | None = None) -> None:
    transaction.on_commit(partial(photo_send_analyze, photo_id=str(photo_id), delay_ms=delay_ms))


def photo_enqueue(
    *, photo: Photo, room_type: str | None = None, force: bool = False
) -> EnqueueResult:
    """Ask for an analysis of `photo`.

    One conditional UPDATE decides: only the request that moves the photo into the queue sends a
    message (on commit), so concurrent requests for one photo send exactly one. ERROR photos can
    always be enqueued again (with a fresh attempt budget); DONE photos only with `force`, and
    they keep their old analysis readable until the new one replaces it.
    """
    result = _enqueue(photo_id=photo.pk, owner=None, room_type=room_type, force=force)
    if result is None:
        raise Photo.DoesNotExist(f"photo {photo.pk} does not exist")
    return result


def photo_enqueue_for_owner(
    *,
    owner: Owner,
    photo_id: uuid.UUID,
    room_type: str | None = None,
    force: bool = False,
) -> EnqueueResult:
    """`photo_enqueue` of the API: the photo must be in one of the owner's projects (else
    `Photo.DoesNotExist`, also for someone else's photo). The owner check is part of the
    conditional UPDATE, so an enqueue that queues the photo is one statement, the check of the
    caller's token included when the owner is given by token."""
    result = _enqueue(photo_id=photo_id, owner=owner, room_type=room_type, force=force)
    if result is None:
        raise Photo.DoesNotExist(f"photo {photo_id} does not exist")
    return result


# Hand-written rather than built by the ORM (≈1 ms of CPU per statement on the API's hottest
# path, measured: docs/benchmarks.md). Portable SQL: PostgreSQL and SQLite. In SET, columns are
# the row's old values: a DONE photo (moved only with `force`) keeps its status and attempts and
# is marked `queued_force`; a PENDING or ERROR one starts over as PENDING with no attempts.
_MOVE = """
UPDATE {photo} SET
    queued_at = %s, updated_at = %s, run = run + 1, room_type = COALESCE(%s, room_type),
    queued_force = (status = %s),
    status = CASE WHEN status = %s THEN status ELSE %s END,
    attempts = CASE WHEN status = %s THEN attempts ELSE 0 END
WHERE id = %s AND queued_at IS NULL AND (status IN (%s, %s) OR (%s AND status = %s)){owner}
"""
_STATE = "SELECT status, queued_at FROM {photo} WHERE id = %s{owner}"
_OWNER_ID = " AND project_id IN (SELECT id FROM {project} WHERE owner_id = %s)"
_OWNER_TOKEN = """ AND project_id IN (
    SELECT pr.id FROM {project} AS pr
    JOIN {token} AS t ON t.user_id = pr.owner_id JOIN {user} AS u ON u.id = t.user_id
    WHERE t.key = %s AND u.is_active
)"""


@dataclass(frozen=True)
class Owner:
    """Whose photo it must be: the user `user_id`, or the active user of API token `token_key`
    (photos/api/fast.py, which checks the token in the same statement)."""

    user_id: int | None = None
    token_key: str | None = None


def _sql(template: str, *, owner: Owner | None) -> str:
    kind = "" if owner is None else "token" if owner.token_key is not None else "user"
    return _sql_for(template, kind, connection.vendor)


@functools.cache
def _sql_for(template: str, owner_kind: str, vendor: str) -> str:
    """The statement with its names quoted, built once per process (it is on the API's hot
    path); `vendor` is part of the key because the quoting is the database's."""
    quote = connection.ops.quote_name
    clause = {
        "": "",
        "user": _OWNER_ID.format(project=quote(Project._meta.db_table)),
        "token": _OWNER_TOKEN.format(
            project=quote(Project._meta.db_table),
            token=quote(Token._meta.db_table),
            user=quote(get_user_model()._meta.db_table),
        ),
    }[owner_kind]
    return template.format(photo=quote(Photo._meta.db_table), owner=clause)


def _enqueue(
    *, photo_id: Any, owner: Owner | None, room_type: str | None, force: bool
) -> EnqueueResult | None:
    """The enqueue of `photo_id` (None: no such photo, or not the owner's)."""
    done, pending, error = Photo.Status.DONE, Photo.Status.PENDING, Photo.Status.ERROR
    pk = db_value(Photo, "id", photo_id)
    now = db_value(Photo, "queued_at", timezone.now())
    owner_params: list[Any] = []
    if owner is not None:
        owner_params = [owner.token_key if owner.token_key is not None else owner.user_id]
    # No transaction of our own: the UPDATE is conditional and atomic by itself. Outside a
    # transaction on_commit sends at once, inside one (an upload's) after its commit; BEGIN and
    # COMMIT would only cost two round trips.
    with connection.cursor() as cursor:
        cursor.execute(
            _sql(_MOVE, owner=owner),
            [now, now, room_type or None, done, done, pending, done]
            + [pk, pending, error, force, done, *owner_params],
        )
        moved = cursor.rowcount
        if moved:
            photo_send_analyze_on_commit(photo_id=str(photo_id))
            return EnqueueResult(EnqueueStatus.ENQUEUED, QueuePosition.WAITING)
        cursor.execute(_sql(_STATE, owner=owner), [pk, *owner_params])
        row = cursor.fetchone()
    if row is None:
        return None
    status, queued_at = row
    if queued_at is not None:
        return EnqueueResult(EnqueueStatus.ALREADY_QUEUED, QueuePosition.WAITING)
    if status == Photo.Status.PROCESSING:
        return EnqueueResult(EnqueueStatus.ALREADY_PROCESSING, QueuePosition.ACTIVE)
    if status == Photo.Status.DONE:
        return EnqueueResult(EnqueueStatus.ALREADY_DONE, QueuePosition.DONE)
    # The photo changed between our UPDATE and this read (a worker finished it with an error a
    # moment ago, say): ask again, the conditional UPDATE settles it.
    return _enqueue(photo_id=photo_id, owner=owner, room_type=room_type, force=force)
