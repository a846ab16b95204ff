"""Finding photos that are owed a message but have none, and sending it again (the relay).

The database is the outbox: `queued_at` says a photo must be processed. A photo is *stuck* when
  - it is PENDING with `queued_at` set for longer than the grace period, or
  - it is PROCESSING and its worker is gone (no heartbeat for the broker's heartbeat timeout),
    or its lease has expired,
and no live `photo-analyze` message (waiting, delayed or held by a worker) names it. That happens
after Redis lost its data, when the broker was down at enqueue time, or after a crash between the
commit and the send.

Re-sending is a compare-and-set on `queued_at`, so two relays running at once (two worker dynos,
cron overlapping itself) send one message, not two.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from infra.broker import PHOTO_QUEUES, alive_workers, live_message_ids
from photos.lifecycle import photo_resend
from photos.models import Photo, Project


@dataclass(frozen=True)
class StuckPhoto:
    id: str
    status: str
    queued_at: datetime | None
    lease_expires_at: datetime | None
    project_id: str
    lease_token: Any = None
    high: bool = False  # the project's priority: its message goes to the high queue


def live_photo_ids(client: Any) -> set[str]:
    """Ids of photos named by a live message of either photo queue: waiting, delayed or in
    flight (a photo deferred for a provider slot has its delayed message)."""
    ids: set[str] = set()
    for queue in PHOTO_QUEUES:
        ids |= live_message_ids(client, queue)
    return ids


def photos_stuck(
    *, client: Any, grace: timedelta | None = None, limit: int | None = None
) -> list[StuckPhoto]:
    """Photos owed a message that have none (see the module docstring), oldest first."""
    now = timezone.now()
    grace = grace if grace is not None else timedelta(seconds=settings.PHOTO_RELAY_GRACE_SECONDS)
    # Read the broker first: a message sent after this read belongs to a photo whose queued_at
    # is fresh, which the grace period leaves out.
    live = live_photo_ids(client)
    alive = alive_workers(client)
    heartbeat_timeout = timedelta(milliseconds=settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS)
    owed = Q(status=Photo.Status.PENDING, queued_at__lt=now - grace) | Q(
        status=Photo.Status.PROCESSING, updated_at__lt=now - heartbeat_timeout
    )
    rows = (
        Photo.objects.filter(owed)
        .order_by("updated_at")
        .values_list(
            "id",
            "status",
            "queued_at",
            "lease_expires_at",
            "project_id",
            "lease_token",
            "lease_owner",
            "project__priority",
        )
    )
    stuck = []
    for photo_id, status, queued_at, expires, project_id, token, owner, priority in rows.iterator():
        if str(photo_id) in live:
            continue
        if status == Photo.Status.PROCESSING and owner in alive and expires and expires > now:
            continue  # a live worker is on it
        high = priority == Project.Priority.HIGH
        stuck.append(
            StuckPhoto(str(photo_id), status, queued_at, expires, str(project_id), token, high)
        )
        if limit is not None and len(stuck) >= limit:
            break
    return stuck


def photo_relay(*, photo: StuckPhoto) -> bool:
    """Send one stuck photo's message again; False if it moved on or another relay took it."""
    return photo_resend(
        photo_id=photo.id,
        status=photo.status,
        queued_at=photo.queued_at,
        lease_token=photo.lease_token,
        high=photo.high,
    )


def photos_relay(*, photos: Iterable[StuckPhoto]) -> tuple[int, int]:
    """Relay each photo; returns (sent, skipped)."""
    sent = skipped = 0
    for photo in photos:
        if photo_relay(photo=photo):
            sent += 1
        else:
            skipped += 1
    return sent, skipped
