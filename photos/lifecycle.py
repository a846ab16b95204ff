"""The photo's state machine: every move of `Photo.status` and of its queue bookkeeping.

Each move is one conditional UPDATE that succeeds only from the expected state, so two requests,
two workers or two relays can never both win; its row count says whether it did.

| move            | from                                       | to                    | by       |
|-----------------|--------------------------------------------|-----------------------|----------|
| enqueue         | PENDING or ERROR, not owed                 | PENDING, owed, 0 att. | API, CLI |
| enqueue (force) | DONE, not owed                             | DONE, owed, forced    | API      |
| claim           | PENDING owed; DONE owed+forced; lease gone | PROCESSING, our lease | worker   |
| take over       | PROCESSING, owner dead (same lease token)  | PROCESSING, our lease | worker   |
| give back       | PROCESSING, our lease (our DB failed)      | PENDING, owed         | worker   |
| mark stage      | PROCESSING, our lease                      | PROCESSING, `stage`   | worker   |
| done            | PROCESSING, our lease                      | DONE                  | worker   |
| retry           | PROCESSING, our lease, retryable, budget   | PENDING, owed         | worker   |
| fail            | PROCESSING, our lease                      | ERROR                 | worker   |
| relay           | PENDING owed; PROCESSING, lease dead/gone  | same status, owed     | relay    |
| defer           | owed, no slot free (no move, not claimed)  | unchanged, owed       | worker   |

(API includes the admin's actions and uploads with `enqueue=true`; CLI is `requeue_failed`; the
relay includes `requeue_stuck`.)

A DONE photo has item rows (photos.PhotoItem, the inventory's input): "done" writes them and the
claim of a forced re-analysis deletes them, each in the move's transaction; an enqueue that gives
a DONE photo a new room label moves its rows to that room.

"Owed" means `queued_at` is set: a `photo-analyze` message (`photo-analyze-high` for a
high-priority project) is (or must be) on its way. A photo deferred for a provider slot stays as
it was, owed, its attempts untouched: only its message is sent again, delayed.
`queued_force` says the current run was asked with force; it lasts until the next enqueue (a
forced run never reuses another photo's answer, retries included). The database
is the outbox: a move that makes a photo owed sends its message on commit, and the relay re-sends
what is owed but absent from Redis. A lease is a token (results are stored only while it holds:
fencing), an owner (the worker's broker id, which the heartbeats track) and an expiry.

Who may move a photo from PROCESSING to PENDING? Only `photo_give_back` and `photo_retry`, both
holding the photo's current lease token.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from infra.broker import current_worker_id, worker_alive
from photos.items import photo_items_replace
from photos.models import Photo, PhotoItem, Project, ProviderAnswer, Stage
from photos.rooms import room_group, room_label_key
from photos.signals import photo_done, photo_failed

logger = logging.getLogger(__name__)
#: A give-back after our database failed: tries, and the pause between them.
GIVE_BACK_TRIES = 3
GIVE_BACK_PAUSE_S = 0.2


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


@dataclass(frozen=True)
class Claim:
    """A photo this worker holds: results are stored only while `token` is its lease token."""

    photo: Photo
    token: uuid.UUID
    #: Answers bought earlier in this run are on record (a crash, a give-back): reuse them.
    answers_on_record: bool = False
    #: The run was asked with force: it pays, never reusing another photo's answer.
    forced: bool = False
    #: Another photo of the project with the same bytes is DONE (a possible reuse).
    identical_done: bool = False


@dataclass(frozen=True)
class Busy:
    """Another worker, alive, holds the photo: look again after `recheck_ms`."""

    recheck_ms: int


# --- messages ---------------------------------------------------------------------------------


def photo_send_analyze(
    *,
    photo_id: str,
    delay_ms: int | None = None,
    high: bool | None = None,
    booked: bool = False,
) -> None:
    """Send the photo's analysis message now: to `photo-analyze-high` when its project is
    high-priority (`high`; None: read from the database). A broker failure is logged, not
    raised: the photo stays owed (`queued_at`), and the relay sends it once Redis is back."""
    # The actors import the work, which imports us.
    from photos.tasks import analyze_photo, analyze_photo_high

    try:
        if high is None:
            high = (
                Project.objects.filter(photos__pk=photo_id)
                .values_list("priority", flat=True)
                .first()
                == Project.Priority.HIGH
            )
        actor = analyze_photo_high if high else analyze_photo
        kwargs = {"booked": True} if booked else {}
        actor.send_with_options(args=(str(photo_id),), kwargs=kwargs, delay=delay_ms)
    except Exception:
        logger.exception("could not send photo-analyze for photo %s; it stays queued", photo_id)


def _send_on_commit(photo_id: Any, delay_ms: int | None = None, high: bool | None = None) -> None:
    transaction.on_commit(
        partial(photo_send_analyze, photo_id=str(photo_id), delay_ms=delay_ms, high=high)
    )


def _is_high(photo: Photo) -> bool:
    return photo.project.priority == Project.Priority.HIGH


# --- enqueue ----------------------------------------------------------------------------------


def photo_enqueue(
    *, photo: Photo, room_type: str | None = None, room: str | None = None, force: bool = False
) -> EnqueueResult:
    """Ask for an analysis of `photo`; see `photo_enqueue_for_user`."""
    return _enqueue(photo.pk, user_id=None, room_type=room_type, room=room, force=force)


def photo_enqueue_for_user(
    *,
    user_id: int,
    photo_id: uuid.UUID,
    room_type: str | None = None,
    room: str | None = None,
    force: bool = False,
) -> EnqueueResult:
    """Ask for an analysis of one of the user's photos (`Photo.DoesNotExist` for any other).

    Only the request that moves the photo into the queue sends a message (on commit), so
    concurrent requests for one photo send exactly one. ERROR photos can always be enqueued again,
    with a fresh attempt budget; DONE photos only with `force`, and they keep their old analysis
    readable until the new one replaces it. Every enqueue starts a new `run`: provider answers
    bought in an earlier run are never reused for this one. A `room_type` or `room` label given
    is stored by the UPDATE that queues the photo (not by a call that finds it already queued).
    """
    return _enqueue(photo_id, user_id=user_id, room_type=room_type, room=room, force=force)


def _enqueue(
    photo_id: Any, *, user_id: int | None, room_type: str | None, room: str | None, force: bool
) -> EnqueueResult:
    where: dict[str, Any] = {"pk": photo_id}
    if user_id is not None:
        # The owner's projects as a subquery, not a join: an UPDATE through a join becomes
        # `id IN (SELECT … JOIN …)`, costlier for the ORM to build and for PostgreSQL to run.
        where["project__in"] = Project.objects.filter(owner_id=user_id).values("pk")
    done = Photo.Status.DONE
    now = timezone.now()
    # No transaction of our own: each UPDATE is atomic by itself. Outside a transaction on_commit
    # sends at once; inside one (an upload's) after its commit.
    common: dict[str, Any] = {"queued_at": now, "updated_at": now, "run": F("run") + 1}
    if room_type:
        common["room_type"] = room_type
    if room:
        common["room_label"], common["room_key"] = room, room_label_key(room)
    moved = Photo.objects.filter(
        **where, queued_at__isnull=True, status__in=[Photo.Status.PENDING, Photo.Status.ERROR]
    ).update(status=Photo.Status.PENDING, attempts=0, queued_force=False, **common)
    if not moved and force:
        # A DONE photo keeps its status, analysis and attempts until the re-analysis replaces them.
        with transaction.atomic():
            moved = Photo.objects.filter(**where, queued_at__isnull=True, status=done).update(
                queued_force=True, **common
            )
            if moved and room:
                PhotoItem.objects.filter(photo_id=photo_id).update(
                    room=room_group(room_key=common["room_key"], photo_id=photo_id)
                )
    if moved:
        _send_on_commit(photo_id)
        return EnqueueResult(EnqueueStatus.ENQUEUED, QueuePosition.WAITING)
    row = Photo.objects.filter(**where).values_list("status", "queued_at").first()
    if row is None:
        raise Photo.DoesNotExist("No such photo.")
    status, queued_at = row
    if queued_at is not None:
        return EnqueueResult(EnqueueStatus.ALREADY_QUEUED, QueuePosition.WAITING)
    if status == Photo.Status.PROCESSING:
        return EnqueueResult(EnqueueStatus.ALREADY_PROCESSING, QueuePosition.ACTIVE)
    if status == done:
        return EnqueueResult(EnqueueStatus.ALREADY_DONE, QueuePosition.DONE)
    # The photo moved between our UPDATE and this read (a worker failed it a moment ago, say):
    # ask again, the conditional UPDATE settles it.
    return _enqueue(photo_id, user_id=user_id, room_type=room_type, room=room, force=force)


# --- the worker's moves -----------------------------------------------------------------------


def _claimable(now: Any) -> Q:
    """PENDING with a message owed, DONE with a forced re-analysis owed, or PROCESSING whose
    lease expired (a worker alive but stuck)."""
    return (
        Q(status=Photo.Status.PENDING, queued_at__isnull=False)
        | Q(status=Photo.Status.DONE, queued_at__isnull=False, queued_force=True)
        | Q(status=Photo.Status.PROCESSING, lease_expires_at__lt=now)
    )


def photo_claim(*, photo_id: str) -> Claim | Busy | None:
    """Take the photo for this worker, or say why not: None (nothing to do) or Busy (a live
    worker has it; the message should look again later).

    A PROCESSING photo whose owner stopped sending heartbeats (killed) is taken over at once,
    with a compare-and-set on its lease token.
    """
    now = timezone.now()
    claim = _take(photo_id, _claimable(now), now=now)
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
        held = Q(status=Photo.Status.PROCESSING, lease_token=row["lease_token"])
        return _take(photo_id, held, now=now)
    expires = row["lease_expires_at"] or now
    remaining_ms = (expires - now).total_seconds() * 1000
    recheck = min(remaining_ms, settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS) + 1000
    return Busy(recheck_ms=max(int(recheck), 1000))


def _take(photo_id: str, condition: Q, *, now: Any) -> Claim | None:
    """Stamp our lease on the photo when `condition` holds; the claim, or None."""
    token = uuid.uuid4()
    try:
        with transaction.atomic():
            taken = Photo.objects.filter(condition, pk=photo_id).update(
                status=Photo.Status.PROCESSING,
                lease_token=token,
                lease_owner=current_worker_id(),
                lease_expires_at=now + timedelta(seconds=settings.PHOTO_LEASE_SECONDS),
                queued_at=None,
                attempts=F("attempts") + 1,
                stage=Stage.PREPARING,
                updated_at=now,
            )
            if not taken:
                return None
            # Out of DONE (a forced re-analysis): out of the inventory until DONE again.
            PhotoItem.objects.filter(photo_id=photo_id).delete()
        photo = (
            Photo.objects.select_related("project")
            .annotate(
                answers_on_record=Exists(
                    ProviderAnswer.objects.filter(photo=OuterRef("pk"), run=OuterRef("run"))
                ),
                # Another photo of the project with the same bytes is DONE: its answer may be
                # reused (photos/services/analysis.py checks model, prompt and room type).
                identical_done=Exists(
                    Photo.objects.filter(
                        project_id=OuterRef("project_id"),
                        sha256=OuterRef("sha256"),
                        status=Photo.Status.DONE,
                    ).exclude(pk=OuterRef("pk"))
                ),
            )
            .get(pk=photo_id, lease_token=token)
        )
    except (OperationalError, InterfaceError):
        # The UPDATE may have been applied and only its answer lost: hand the photo back if it
        # is ours (a no-op otherwise), rather than leave it to the lease's expiry.
        photo_give_back(photo_id=photo_id, token=token)
        raise
    except Photo.DoesNotExist:
        return None  # taken over from us between the two statements
    return Claim(
        photo=photo,
        token=token,
        answers_on_record=photo.answers_on_record,
        forced=photo.queued_force,
        identical_done=photo.identical_done and bool(photo.sha256),
    )


def _held(claim: Claim) -> QuerySet[Photo]:
    """Fencing: every write after the claim succeeds only while our lease is the current one."""
    return Photo.objects.filter(
        pk=claim.photo.pk, status=Photo.Status.PROCESSING, lease_token=claim.token
    )


def photo_give_back(*, photo_id: Any, token: uuid.UUID) -> None:
    """Hand a claimed photo back, PENDING, owed a message and its attempt not spent, after our
    own database failed mid-attempt (a dropped connection, a restart).

    Otherwise the retry of the message finds this worker's live lease and waits for it to
    expire. Tried GIVE_BACK_TRIES times, a new connection each: the one the pool hands out may
    be cut by the same failure (a pooled connection checked just before its backend was
    terminated). If the database is still down, the lease expires and the relay re-sends, as
    after a crash.
    """
    for tried in range(1, GIVE_BACK_TRIES + 1):
        if not connection.in_atomic_block:
            connection.close()  # the broken one: the next query gets a checked one from the pool
        now = timezone.now()
        try:
            Photo.objects.filter(
                pk=photo_id, status=Photo.Status.PROCESSING, lease_token=token
            ).update(
                status=Photo.Status.PENDING,
                queued_at=now,
                attempts=F("attempts") - 1,
                lease_token=None,
                lease_expires_at=None,
                updated_at=now,
            )
            return
        except (DatabaseError, InterfaceError):
            if tried < GIVE_BACK_TRIES:
                time.sleep(GIVE_BACK_PAUSE_S)
    logger.warning("photo %s: the database is still down; its lease will expire", photo_id)


def photo_mark_stage(*, claim: Claim, stage: Stage) -> bool:
    """A PROCESSING photo's worker moved on (`stage`), for clients showing progress; only while
    `claim` holds the lease. One write per stage, none per second of provider time."""
    return bool(_held(claim).update(stage=stage, updated_at=timezone.now()))


def photo_store_done(*, claim: Claim, analysis: dict[str, Any], room_type: str) -> bool:
    """PROCESSING → DONE with `analysis`, only while `claim` holds the lease (False: fenced).

    The photo's item rows (photos/items.py) are replaced and `photo_done` is sent inside the
    same transaction (the signal's contract, photos/signals.py).
    """
    now = timezone.now()
    totals = analysis["totals"]
    with transaction.atomic():
        stored = _held(claim).update(
            status=Photo.Status.DONE,
            analysis=analysis,
            room_type=room_type,
            items_count=totals["items"],
            volume_m3=Decimal(str(totals["volume_m3"])),
            error_code=None,
            error_message=None,
            processed_at=now,
            lease_token=None,
            lease_expires_at=None,
            updated_at=now,
        )
        if not stored:
            logger.warning("photo %s: lease lost before DONE, result dropped", claim.photo.pk)
            return False
        # Read again, in this transaction: staff may have relabelled the photo since the claim.
        room_key = Photo.objects.values_list("room_key", flat=True).get(pk=claim.photo.pk)
        photo_items_replace(
            photo_id=claim.photo.pk,
            project_id=claim.photo.project_id,
            room=room_group(room_key=room_key, photo_id=claim.photo.pk),
            analysis=analysis,
        )
        photo_done.send(sender=Photo, photo_id=claim.photo.pk, project_id=claim.photo.project_id)
    return True


def photo_store_failure(
    *, claim: Claim, code: str, message: str, retry_delay_ms: int | None
) -> bool:
    """PROCESSING → PENDING (a retry: a delayed message is sent, `retry_delay_ms` given) or
    ERROR (None), keeping the error; only while `claim` holds the lease (False: fenced).

    `photo_failed` is sent inside the ERROR transaction (photos/signals.py)."""
    now = timezone.now()
    error = {
        "error_code": code,
        "error_message": message,
        "lease_token": None,
        "lease_expires_at": None,
        "updated_at": now,
    }
    with transaction.atomic():
        if retry_delay_ms is None:
            failed = _held(claim).update(status=Photo.Status.ERROR, **error)
            if failed:
                photo_failed.send(
                    sender=Photo, photo_id=claim.photo.pk, project_id=claim.photo.project_id
                )
            return bool(failed)
        stored = _held(claim).update(status=Photo.Status.PENDING, queued_at=now, **error)
        if stored:
            _send_on_commit(claim.photo.pk, retry_delay_ms, _is_high(claim.photo))
    return bool(stored)


def photo_recheck_later(*, photo_id: str, delay_ms: int) -> None:
    """No move: a live worker holds the photo. This message may be a redelivery or a duplicate,
    so look again later; if that worker dies, the photo is then finished, not stranded."""
    _send_on_commit(photo_id, delay_ms)


def photo_defer(*, photo_id: str, delay_ms: int, high: bool) -> None:
    """No move: no provider slot is free for the photo now (ai_engine/quota.py), so its message
    is sent again to arrive when one should be. Nothing was claimed or spent: the photo stays
    owed (if this send fails, the relay re-sends), its attempts untouched."""
    photo_send_analyze(photo_id=photo_id, delay_ms=delay_ms, high=high, booked=True)


# --- the relay --------------------------------------------------------------------------------


def photo_resend(
    *,
    photo_id: str,
    status: str,
    queued_at: Any,
    lease_token: uuid.UUID | None,
    high: bool | None = None,
) -> bool:
    """Owed anew: re-send the message of a photo the relay found stuck, if it is still as the
    relay saw it (False: it moved on, or another relay took it). Compare-and-set on `queued_at`
    (and for PROCESSING, on the dead or expired lease's token)."""
    unchanged = Photo.objects.filter(pk=photo_id, status=status, queued_at=queued_at)
    if status == Photo.Status.PROCESSING:
        unchanged = unchanged.filter(lease_token=lease_token)
    with transaction.atomic():
        taken = unchanged.update(queued_at=timezone.now())
        if taken:
            _send_on_commit(photo_id, high=high)
    return bool(taken)
