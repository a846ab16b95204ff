"""Who works on a photo: the claim, the lease, and taking over from a dead worker.

A claim is one conditional UPDATE that moves the photo to PROCESSING and stamps it with a lease:
a token (results are stored only while it still holds: fencing), an owner (the worker process's
broker id, which the broker's heartbeats track) and an expiry (an upper bound, for a worker that
is alive but stuck).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import dramatiq
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.db.models import F, Q
from django.utils import timezone

from moverz.broker import broker_redis
from photos.models import Photo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    photo: Photo
    token: uuid.UUID


@dataclass(frozen=True)
class Busy:
    """Another worker, alive, holds the photo: look again after `recheck_ms`."""

    recheck_ms: int


def worker_id() -> str:
    """This process's id as the broker's heartbeats know it."""
    return str(getattr(dramatiq.get_broker(), "broker_id", ""))


def worker_alive(owner: str) -> bool:
    """Has the worker `owner` sent a heartbeat within the broker's heartbeat timeout?"""
    if not owner:
        return False
    beat = broker_redis().zscore(f"{settings.DRAMATIQ_NAMESPACE}:__heartbeats__", owner)
    if beat is None:
        return False
    age_ms = timezone.now().timestamp() * 1000 - float(beat)
    return age_ms < settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS


def _lease(now_token: uuid.UUID) -> dict[str, object]:
    now = timezone.now()
    return {
        "status": Photo.Status.PROCESSING,
        "lease_token": now_token,
        "lease_owner": worker_id(),
        "lease_expires_at": now + timedelta(seconds=settings.PHOTO_LEASE_SECONDS),
        "queued_at": None,
        "queued_force": False,
        "attempts": F("attempts") + 1,
        "updated_at": now,
    }


def photo_claim(*, photo_id: str) -> Claim | Busy | None:
    """Take the photo for this worker, or say why not.

    Claimable: PENDING with a message owed, DONE with a forced re-analysis owed, or PROCESSING
    whose lease expired. A PROCESSING photo whose owner stopped sending heartbeats (killed) is
    taken over at once, with a compare-and-set on its lease token. Anything else: None (nothing
    to do) or Busy (a live worker has it; this message should look again later).
    """
    now = timezone.now()
    token = uuid.uuid4()
    claimable = (
        Q(status=Photo.Status.PENDING, queued_at__isnull=False)
        | Q(status=Photo.Status.DONE, queued_at__isnull=False, queued_force=True)
        | Q(status=Photo.Status.PROCESSING, lease_expires_at__lt=now)
    )
    if Photo.objects.filter(claimable, pk=photo_id).update(**_lease(token)):
        return _claimed(photo_id, token)

    row = (
        Photo.objects.filter(pk=photo_id, status=Photo.Status.PROCESSING)
        .values("lease_token", "lease_owner", "lease_expires_at")
        .first()
    )
    if row is None:
        return None
    if not worker_alive(row["lease_owner"]):
        taken = Photo.objects.filter(
            pk=photo_id, status=Photo.Status.PROCESSING, lease_token=row["lease_token"]
        ).update(**_lease(token))
        if taken:
            return _claimed(photo_id, token)
        return None
    expires = row["lease_expires_at"] or now
    remaining_ms = (expires - now).total_seconds() * 1000
    recheck = min(remaining_ms, settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS) + 1000
    return Busy(recheck_ms=max(int(recheck), 1000))


def _claimed(photo_id: str, token: uuid.UUID) -> Claim:
    try:
        return Claim(photo=Photo.objects.select_related("project").get(pk=photo_id), token=token)
    except (OperationalError, InterfaceError):
        photo_give_back(photo_id=photo_id, token=token)  # claimed, but we cannot work on it
        raise


def photo_give_back(*, photo_id: Any, token: uuid.UUID) -> None:
    """Hand a claimed photo back, PENDING, owed a message and its attempt not spent, after our
    own database failed mid-attempt (a dropped connection, a restart).

    Otherwise the retry of the message finds this worker's live lease and waits
    PHOTO_LEASE_SECONDS for it to expire (the fault suite saw photos stranded for a minute and
    more). If the database is still down, the lease expires and the relay re-sends, as after a
    crash.
    """
    if not connection.in_atomic_block:
        connection.close()  # the broken one: the next query gets a checked one from the pool
    now = timezone.now()
    try:
        Photo.objects.filter(pk=photo_id, status=Photo.Status.PROCESSING, lease_token=token).update(
            status=Photo.Status.PENDING,
            queued_at=now,
            attempts=F("attempts") - 1,
            lease_token=None,
            lease_expires_at=None,
            updated_at=now,
        )
    except (DatabaseError, InterfaceError):
        logger.warning("photo %s: the database is still down; its lease will expire", photo_id)
