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
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from infra.broker import live_message_ids
from photos.models import Photo
from photos.services.queueing import photo_send_analyze_on_commit

PHOTO_QUEUE = "photo-analyze"


@dataclass(frozen=True)
class StuckPhoto:
    id: str
    status: str
    queued_at: datetime | None
    lease_expires_at: datetime | None
    project_id: str
    lease_token: Any = None


def alive_workers(client: Any) -> set[str]:
    """Workers whose last heartbeat is within the broker's heartbeat timeout."""
    now_ms = timezone.now().timestamp() * 1000
    beats = client.zrangebyscore(
        f"{settings.DRAMATIQ_NAMESPACE}:__heartbeats__",
        now_ms - settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS,
        "+inf",
    )
    return {beat.decode() if isinstance(beat, bytes) else beat for beat in beats}


def live_photo_ids(client: Any) -> set[str]:
    """Ids of photos named by a live `photo-analyze` message: waiting, delayed or in flight."""
    return live_message_ids(client, PHOTO_QUEUE)


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
        )
    )
    stuck = []
    for photo_id, status, queued_at, expires, project_id, token, owner in rows.iterator():
        if str(photo_id) in live:
            continue
        if status == Photo.Status.PROCESSING and owner in alive and expires and expires > now:
            continue  # a live worker is on it
        stuck.append(StuckPhoto(str(photo_id), status, queued_at, expires, str(project_id), token))
        if limit is not None and len(stuck) >= limit:
            break
    return stuck


def photo_relay(*, photo: StuckPhoto) -> bool:
    """Send one stuck photo's message again; False if it moved on or another relay took it."""
    now = timezone.now()
    unchanged = Photo.objects.filter(pk=photo.id, status=photo.status)
    if photo.status == Photo.Status.PENDING:
        unchanged = unchanged.filter(queued_at=photo.queued_at)
    else:
        # Still held by the same (dead or expired) lease, and not already relayed since.
        unchanged = unchanged.filter(lease_token=photo.lease_token)
        unchanged = (
            unchanged.filter(queued_at=photo.queued_at)
            if photo.queued_at
            else unchanged.filter(queued_at__isnull=True)
        )
    with transaction.atomic():
        taken = unchanged.update(queued_at=now)
        if taken:
            photo_send_analyze_on_commit(photo_id=photo.id)
    return bool(taken)


def photos_relay(*, photos: Iterable[StuckPhoto]) -> tuple[int, int]:
    """Relay each photo; returns (sent, skipped)."""
    sent = skipped = 0
    for photo in photos:
        if photo_relay(photo=photo):
            sent += 1
        else:
            skipped += 1
    return sent, skipped
