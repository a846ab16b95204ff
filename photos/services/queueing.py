"""Putting photos in the `photo-analyze` queue: exactly one message per request for work."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

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
    rows = Photo.objects.filter(pk=photo.pk)
    return _enqueue(rows, photo_id=photo.pk, room_type=room_type, force=force)


def photo_enqueue_for_owner(
    *, owner: Any, photo_id: uuid.UUID, room_type: str | None = None, force: bool = False
) -> EnqueueResult:
    """`photo_enqueue` of the API: the photo must be one of `owner`'s projects' (else
    `Photo.DoesNotExist`, also for someone else's photo). The owner check is part of the
    conditional UPDATE, so an enqueue that queues the photo is one statement."""
    rows = Photo.objects.filter(pk=photo_id, project__in=Project.objects.filter(owner=owner))
    return _enqueue(rows, photo_id=photo_id, room_type=room_type, force=force)


def _enqueue(
    rows: QuerySet[Photo], *, photo_id: Any, room_type: str | None, force: bool
) -> EnqueueResult:
    now = timezone.now()
    changes: dict[str, object] = {"queued_at": now, "updated_at": now, "run": F("run") + 1}
    if room_type:
        changes["room_type"] = room_type
    idle = rows.filter(queued_at__isnull=True)

    # No transaction of our own: each UPDATE is conditional and atomic by itself, and the two
    # match exclusive states. Outside a transaction on_commit sends at once, inside one (an
    # upload's) after its commit; BEGIN and COMMIT would only cost two round trips.
    moved = idle.filter(status__in=[Photo.Status.PENDING, Photo.Status.ERROR]).update(
        status=Photo.Status.PENDING, queued_force=False, attempts=0, **changes
    )
    if not moved and force:
        moved = idle.filter(status=Photo.Status.DONE).update(queued_force=True, **changes)
    if moved:
        photo_send_analyze_on_commit(photo_id=str(photo_id))
        return EnqueueResult(EnqueueStatus.ENQUEUED, QueuePosition.WAITING)

    status, queued_at = rows.values_list("status", "queued_at").get()
    if queued_at is not None:
        return EnqueueResult(EnqueueStatus.ALREADY_QUEUED, QueuePosition.WAITING)
    if status == Photo.Status.PROCESSING:
        return EnqueueResult(EnqueueStatus.ALREADY_PROCESSING, QueuePosition.ACTIVE)
    if status == Photo.Status.DONE:
        return EnqueueResult(EnqueueStatus.ALREADY_DONE, QueuePosition.DONE)
    # The photo changed between our UPDATE and this read (a worker finished it with an error a
    # moment ago, say): ask again, the conditional UPDATE settles it.
    return _enqueue(rows, photo_id=photo_id, room_type=room_type, force=force)
