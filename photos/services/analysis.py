"""The `photo-analyze` work: claim, read the image, ask the AI provider, store the outcome."""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from ai_engine.engine import AiEngine, CallRecord
from ai_engine.errors import AiError, ErrorCode, error_from_exception
from ai_engine.prompts import PROMPT_VERSION
from ai_engine.registry import engine_from_settings
from ai_engine.types import AiProvider, PhotoAnalysis
from aimetrics.services import aimetric_record
from imaging.preflight import PreparedImage, image_preflight
from moverz.broker import broker_redis
from photos.models import Photo
from photos.services.queueing import photo_send_analyze_on_commit
from photos.signals import photo_done
from photos.volumes import volume_catalogue

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


def photo_analyze(
    *, photo_id: str, engine: AiEngine | None = None, provider: AiProvider | None = None
) -> Outcome:
    """Analyse one photo. Safe to run any number of times for one photo: the claim decides.

    `engine` (or a single `provider`) replaces the configured providers, for tests and tools.
    """
    claim = photo_claim(photo_id=photo_id)
    if claim is None:
        return _not_claimed(photo_id)
    photo = claim.photo
    if engine is None:
        engine = (
            AiEngine([provider]) if provider else engine_from_settings(redis_client=broker_redis())
        )
    try:
        with photo.image.open("rb") as handle:
            original = handle.read()
        prepared = _preflight(original)
        recorder = _MetricRecorder(photo, prepared.as_meta())
        analysis, room_type = _ask_engine(photo, prepared, engine.with_recorder(recorder))
    except Exception as exc:  # every failure becomes data: a code, a message, a retry decision
        error = error_from_exception(exc)
        if error.code == ErrorCode.UNKNOWN:
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


def _preflight(original: bytes) -> PreparedImage:
    try:
        return image_preflight(original)
    except Exception as exc:
        raise AiError(ErrorCode.BAD_INPUT, f"the stored image cannot be prepared: {exc}") from exc


class _MetricRecorder:
    """Writes one AiMetric row per provider call, with the photo's ids and the preflight figures."""

    def __init__(self, photo: Photo, image_meta: dict[str, int]) -> None:
        self.photo = photo
        self.meta: dict[str, Any] = {
            "photoId": str(photo.pk),
            "projectId": str(photo.project_id),
            "userId": photo.project.owner_id,
            **image_meta,
        }

    def __call__(self, record: CallRecord) -> None:
        meta = self.meta | record.extra
        if record.error is not None:
            meta["error"] = record.error.message
        aimetric_record(
            provider=record.provider,
            model=record.model,
            operation=record.operation,
            latency_ms=record.latency_ms,
            success=record.success,
            error_type=record.error.code if record.error else None,
            retries=max(self.photo.attempts - 1, 0),
            tokens_in=record.tokens_in,
            tokens_out=record.tokens_out,
            cost_usd=record.cost_usd,
            photo_id=self.photo.pk,
            project_id=self.photo.project_id,
            meta=meta,
        )


def _ask_engine(
    photo: Photo, prepared: PreparedImage, engine: AiEngine
) -> tuple[dict[str, Any], str]:
    room_type = photo.room_type
    room_confidence = None
    if not room_type:
        guess = engine.detect_room(prepared.data)
        room_type, room_confidence = guess.room_type, guess.confidence
    catalogue = volume_catalogue()
    result = engine.analyze_photo(prepared.data, room_type, catalogue.keys())
    volumes = catalogue.volumes(item.key for item in result.items)
    document = analysis_document(result, volumes=volumes)
    if room_confidence is not None:
        document["roomConfidence"] = room_confidence
    return document, room_type


def analysis_document(result: PhotoAnalysis, *, volumes: dict[str, Decimal]) -> dict[str, Any]:
    """The `analysis` JSON of the API contract. An item's volume is its catalogue volume ×
    quantity; an item the catalogue lacks keeps the model's estimate, flagged as such."""
    items = []
    total_volume = Decimal("0")
    for item in result.items:
        unit = volumes.get(item.key)
        source = "catalogue"
        if unit is None:
            unit = Decimal(str(item.volume_m3_estimate or 0))
            source = "model"
        volume = (unit * item.quantity).quantize(CENT, ROUND_HALF_UP)
        total_volume += volume
        items.append(
            {
                "key": item.key,
                "name": item.name,
                "category": item.category,
                "quantity": item.quantity,
                "volume_m3": float(volume),
                "volumeSource": source,
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
        "promptVersion": PROMPT_VERSION,
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
