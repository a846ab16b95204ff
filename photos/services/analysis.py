"""The `photo-analyze` work: claim, read the image, ask the AI provider, store the outcome."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from ai_engine.catalogue import unit_volume
from ai_engine.errors import AiError, error_from_exception
from ai_engine.registry import provider_from_settings
from ai_engine.types import AiProvider, PhotoAnalysis, Usage
from aimetrics.services import aimetric_record
from photos.models import Photo
from photos.services.queueing import photo_send_analyze_on_commit
from photos.signals import photo_done

logger = logging.getLogger(__name__)
CENT = Decimal("0.01")


class Outcome(StrEnum):
    DONE = "done"
    RETRY = "retry"  # back to PENDING, a delayed message will try again
    ERROR = "error"
    SKIPPED = "skipped"  # nothing to do: someone else has it, or it is finished
    BUSY = "busy"  # another worker holds a live lease; a delayed message checks again
    FENCED = "fenced"  # our lease was taken over while we worked: our result was dropped


@dataclass(frozen=True)
class Claim:
    photo: Photo
    token: uuid.UUID


def photo_claim(*, photo_id: str) -> Claim | None:
    """Take the photo for this worker with one conditional UPDATE.

    Claimable: PENDING with a message owed, DONE with a forced re-analysis owed, or PROCESSING
    whose lease expired (its worker died). Duplicate messages find nothing to claim.
    """
    now = timezone.now()
    token = uuid.uuid4()
    claimable = (
        Q(status=Photo.Status.PENDING, queued_at__isnull=False)
        | Q(status=Photo.Status.DONE, queued_at__isnull=False, queued_force=True)
        | Q(status=Photo.Status.PROCESSING, lease_expires_at__lt=now)
    )
    claimed = Photo.objects.filter(claimable, pk=photo_id).update(
        status=Photo.Status.PROCESSING,
        lease_token=token,
        lease_expires_at=now + timedelta(seconds=settings.PHOTO_LEASE_SECONDS),
        queued_at=None,
        queued_force=False,
        attempts=F("attempts") + 1,
        updated_at=now,
    )
    if not claimed:
        return None
    photo = Photo.objects.select_related("project").get(pk=photo_id)
    return Claim(photo=photo, token=token)


def retry_delay_ms(*, attempt: int, retry_after_s: float | None = None) -> int:
    """Exponential backoff with jitter; a provider's `retry-after` sets the delay instead."""
    if retry_after_s is not None:
        return int(retry_after_s * 1000) + random.randint(0, 250)
    ceiling = min(settings.PHOTO_RETRY_MAX_MS, settings.PHOTO_RETRY_BASE_MS * 2 ** (attempt - 1))
    return int(ceiling / 2 + random.uniform(0, ceiling / 2))


def photo_analyze(*, photo_id: str, provider: AiProvider | None = None) -> Outcome:
    """Analyse one photo. Safe to run any number of times for one photo: the claim decides."""
    claim = photo_claim(photo_id=photo_id)
    if claim is None:
        return _not_claimed(photo_id)
    photo = claim.photo
    provider = provider or provider_from_settings()
    try:
        with photo.image.open("rb") as handle:
            image = handle.read()
        analysis, room_type = _run_provider(photo, image, provider)
    except Exception as exc:  # every failure becomes data: a code, a message, a retry decision
        error = error_from_exception(exc)
        if error.code == "UNKNOWN":
            logger.exception("photo %s: unexpected failure", photo_id)
        return _store_failure(claim, error)
    return _store_done(claim, analysis, room_type)


def _not_claimed(photo_id: str) -> Outcome:
    row = Photo.objects.filter(pk=photo_id).values("status", "lease_expires_at").first()
    if row is None or row["status"] != Photo.Status.PROCESSING or not row["lease_expires_at"]:
        return Outcome.SKIPPED
    # A live lease: this message may be a redelivery from a worker that died. Look again once the
    # lease has run out, so a dead worker's photo is finished rather than stranded.
    remaining = row["lease_expires_at"] - timezone.now()
    delay_ms = max(int(remaining.total_seconds() * 1000), 0) + 1000
    photo_send_analyze_on_commit(photo_id=photo_id, delay_ms=delay_ms)
    return Outcome.BUSY


def _run_provider(photo: Photo, image: bytes, provider: AiProvider) -> tuple[dict[str, Any], str]:
    room_type = photo.room_type
    if not room_type:
        guess = _timed_call(photo, "detect_room", provider, lambda: provider.detect_room(image))
        room_type = guess.room_type
    result = _timed_call(
        photo, "analyze_photo", provider, lambda: provider.analyze_photo(image, room_type)
    )
    return analysis_document(result), room_type


def _timed_call[T](photo: Photo, operation: str, provider: AiProvider, call: Callable[[], T]) -> T:
    """Run one provider call and write its AiMetric row, whatever the outcome."""
    started = time.perf_counter()
    meta = {
        "photoId": str(photo.pk),
        "projectId": str(photo.project_id),
        "userId": photo.project.owner_id,
    }
    retries = max(photo.attempts - 1, 0)
    try:
        result = call()
    except Exception as exc:
        error = error_from_exception(exc)
        aimetric_record(
            provider=provider.name,
            model=getattr(provider, "model", "") or "",
            latency_ms=_elapsed_ms(started),
            success=False,
            error_type=error.code,
            meta=meta | {"error": error.message},
            operation=operation,
            retries=retries,
            photo_id=photo.pk,
            project_id=photo.project_id,
        )
        raise error from exc
    usage: Usage = result.usage  # type: ignore[attr-defined]
    if isinstance(result, PhotoAnalysis):
        meta["itemsCount"] = sum(item.quantity for item in result.items)
    aimetric_record(
        provider=usage.provider,
        model=usage.model,
        latency_ms=_elapsed_ms(started),
        success=True,
        tokens_in=usage.tokens_in,
        tokens_out=usage.tokens_out,
        meta=meta,
        operation=operation,
        retries=retries,
        photo_id=photo.pk,
        project_id=photo.project_id,
    )
    return result


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def analysis_document(result: PhotoAnalysis) -> dict[str, Any]:
    """The `analysis` JSON of the API contract, volumes from the catalogue."""
    items = []
    total_volume = Decimal("0")
    for item in result.items:
        volume = (unit_volume(item.key) * item.quantity).quantize(CENT, ROUND_HALF_UP)
        total_volume += volume
        items.append(
            {
                "key": item.key,
                "name": item.name,
                "category": item.category,
                "quantity": item.quantity,
                "volume_m3": float(volume),
                "confidence": item.confidence,
                "fragile": item.fragile,
                "dismantle": item.dismantle,
            }
        )
    return {
        "items": items,
        "totals": {
            "items": sum(item.quantity for item in result.items),
            "volume_m3": float(total_volume),
        },
        "confidence": result.confidence,
        "provider": result.usage.provider,
        "model": result.usage.model,
    }


def _lease_held(claim: Claim) -> QuerySet[Photo]:
    # Fencing: every write after the claim only succeeds while our lease token is the current one.
    return Photo.objects.filter(
        pk=claim.photo.pk, status=Photo.Status.PROCESSING, lease_token=claim.token
    )


def _store_done(claim: Claim, analysis: dict[str, Any], room_type: str) -> Outcome:
    now = timezone.now()
    with transaction.atomic():
        stored = _lease_held(claim).update(
            status=Photo.Status.DONE,
            analysis=analysis,
            room_type=room_type,
            items_count=analysis["totals"]["items"],
            volume_m3=Decimal(str(analysis["totals"]["volume_m3"])),
            error_code=None,
            error_message=None,
            processed_at=now,
            lease_token=None,
            lease_expires_at=None,
            updated_at=now,
        )
        if not stored:
            logger.warning("photo %s: lease lost before DONE, result dropped", claim.photo.pk)
            return Outcome.FENCED
        photo_done.send(sender=Photo, photo_id=claim.photo.pk, project_id=claim.photo.project_id)
    return Outcome.DONE


def _store_failure(claim: Claim, error: AiError) -> Outcome:
    now = timezone.now()
    attempts = claim.photo.attempts
    will_retry = error.retryable and attempts < settings.PHOTO_MAX_ATTEMPTS
    common = {
        "error_code": error.code,
        "error_message": error.message,
        "lease_token": None,
        "lease_expires_at": None,
        "updated_at": now,
    }
    with transaction.atomic():
        if will_retry:
            stored = _lease_held(claim).update(status=Photo.Status.PENDING, queued_at=now, **common)
            if stored:
                delay = retry_delay_ms(attempt=attempts, retry_after_s=error.retry_after_s)
                photo_send_analyze_on_commit(photo_id=str(claim.photo.pk), delay_ms=delay)
        else:
            stored = _lease_held(claim).update(status=Photo.Status.ERROR, **common)
    if not stored:
        return Outcome.FENCED
    return Outcome.RETRY if will_retry else Outcome.ERROR
