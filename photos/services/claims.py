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
from datetime import datetime, timedelta
from typing import Any

import dramatiq
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.db.models import F, Field
from django.utils import timezone

from aimetrics.models import AiMetric
from infra.broker import broker_redis
from infra.sql import db_value
from photos.models import Photo, Project

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    photo: Photo
    token: uuid.UUID
    #: The photo has successful provider calls on record (AiMetric): answers bought earlier in
    #: this run may be reusable. False on a photo's first analysis, the usual case.
    called_before: bool = True


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


# Hand-written rather than built by the ORM: the claim is on every message's path, and building a
# statement costs the ORM ~0.5 ms of CPU (docs/benchmarks.md). Portable SQL (PostgreSQL, and SQLite
# from 3.35 for RETURNING). One statement takes the photo and returns what the work needs: the
# photo's columns below, its owner (for the metrics) and whether it has calls on record.
_TAKE = """
UPDATE {photo} SET
    status = %s, lease_token = %s, lease_owner = %s, lease_expires_at = %s,
    queued_at = NULL, queued_force = %s, attempts = attempts + 1, updated_at = %s
WHERE id = %s AND ({condition})
RETURNING {columns},
    (SELECT owner_id FROM {project} WHERE id = {photo}.project_id),
    EXISTS (SELECT 1 FROM {metric} WHERE photo_id = {photo}.id AND success)
"""
#: Claimable: PENDING with a message owed, DONE with a forced re-analysis owed, or PROCESSING
#: whose lease expired.
_CLAIMABLE = (
    "(status = %s AND queued_at IS NOT NULL)"
    " OR (status = %s AND queued_at IS NOT NULL AND queued_force)"
    " OR (status = %s AND lease_expires_at < %s)"
)
#: Taking over from a dead worker: compare-and-set on its lease token.
_HELD_WITH = "status = %s AND lease_token = %s"
_HELD_WITHOUT_TOKEN = "status = %s AND lease_token IS NULL"
#: The photo's columns a claim reads (the others are deferred: loaded if ever accessed).
_COLUMNS = frozenset({"id", "project_id", "image", "room_type", "status", "run", "attempts"})
_FIELDS: list[Field[Any, Any]] = [
    field for field in Photo._meta.concrete_fields if field.attname in _COLUMNS
]


def photo_claim(*, photo_id: str) -> Claim | Busy | None:
    """Take the photo for this worker, or say why not.

    Claimable: PENDING with a message owed, DONE with a forced re-analysis owed, or PROCESSING
    whose lease expired. A PROCESSING photo whose owner stopped sending heartbeats (killed) is
    taken over at once, with a compare-and-set on its lease token. Anything else: None (nothing
    to do) or Busy (a live worker has it; this message should look again later).
    """
    now = timezone.now()
    claimable = [
        Photo.Status.PENDING,
        Photo.Status.DONE,
        Photo.Status.PROCESSING,
        db_value(Photo, "lease_expires_at", now),
    ]
    claim = _take(photo_id, _CLAIMABLE, claimable, now=now)
    if claim is not None:
        return claim

    row = (
        Photo.objects.filter(pk=photo_id, status=Photo.Status.PROCESSING)
        .values("lease_token", "lease_owner", "lease_expires_at")
        .first()
    )
    if row is None:
        return None
    if not worker_alive(row["lease_owner"]):
        token = row["lease_token"]
        if token is None:
            return _take(photo_id, _HELD_WITHOUT_TOKEN, [Photo.Status.PROCESSING], now=now)
        held = [Photo.Status.PROCESSING, db_value(Photo, "lease_token", token)]
        return _take(photo_id, _HELD_WITH, held, now=now)
    expires = row["lease_expires_at"] or now
    remaining_ms = (expires - now).total_seconds() * 1000
    recheck = min(remaining_ms, settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS) + 1000
    return Busy(recheck_ms=max(int(recheck), 1000))


def _take(
    photo_id: str, condition: str, condition_params: list[Any], *, now: datetime
) -> Claim | None:
    """One conditional UPDATE that stamps our lease on the photo when `condition` holds; the
    claim, or None when it did not hold."""
    token = uuid.uuid4()
    quote = connection.ops.quote_name
    sql = _TAKE.format(
        photo=quote(Photo._meta.db_table),
        project=quote(Project._meta.db_table),
        metric=quote(AiMetric._meta.db_table),
        condition=condition,
        columns=", ".join(quote(str(field.column)) for field in _FIELDS),
    )
    lease = [
        Photo.Status.PROCESSING,
        db_value(Photo, "lease_token", token),
        worker_id(),
        db_value(Photo, "lease_expires_at", now + timedelta(seconds=settings.PHOTO_LEASE_SECONDS)),
        False,
        db_value(Photo, "updated_at", now),
        db_value(Photo, "id", photo_id),
    ]
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, lease + condition_params)
            row = cursor.fetchone()
    except (OperationalError, InterfaceError):
        # The UPDATE may have been applied and only its answer lost: hand the photo back if it
        # is ours (a no-op otherwise), rather than leave it to the lease's expiry.
        photo_give_back(photo_id=photo_id, token=token)
        raise
    if row is None:
        return None
    *values, owner_id, called_before = row
    photo = Photo.from_db(connection.alias, _COLUMNS, _from_db(values))
    # The project as far as the work needs it (its other fields load if ever accessed).
    photo.project = Project.from_db(
        connection.alias, ["id", "owner_id"], [photo.project_id, owner_id]
    )
    return Claim(photo=photo, token=token, called_before=bool(called_before))


def _from_db(values: list[Any]) -> list[Any]:
    """Column values as the ORM would have given them (SQLite returns UUIDs as text, say)."""
    out = []
    for field, value in zip(_FIELDS, values, strict=True):
        col = field.get_col(Photo._meta.db_table)
        for converter in connection.ops.get_db_converters(col) + field.get_db_converters(
            connection
        ):
            value = converter(value, col, connection)
        out.append(value)
    return out


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
