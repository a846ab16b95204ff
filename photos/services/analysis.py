"""The `photo-analyze` work: claim, read the image, ask the AI provider, store the outcome."""

from __future__ import annotations

import logging
import random
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from ai_engine.engine import AiEngine, CallRecord
from ai_engine.errors import AiError, ErrorCode, error_from_exception
from ai_engine.prompts import PROMPT_VERSION
from ai_engine.quota import Wait
from ai_engine.registry import engine_from_settings
from ai_engine.types import AiProvider, ImageBytes, PhotoAnalysis, RoomGuess, answer_from_json
from aimetrics.services import aimetric_record, answer_cost, answer_reuse_record
from imaging.preflight import PreparedImage, image_preflight
from infra.broker import broker_redis
from photos.lifecycle import (
    Busy,
    Claim,
    photo_claim,
    photo_give_back,
    photo_mark_stage,
    photo_recheck_later,
    photo_store_done,
    photo_store_failure,
)
from photos.models import Photo, ProviderAnswer, Stage
from photos.services.slots import Spent, quota_release, quota_slot
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
    DEFERRED = "deferred"  # no provider slot free: a delayed message comes back for it


def retry_delay_ms(*, attempt: int, retry_after_s: float | None = None) -> int:
    """Exponential backoff with jitter; a provider's `retry-after` sets the delay instead."""
    if retry_after_s is not None:
        return int(retry_after_s * 1000) + random.randint(0, 250)
    ceiling = min(settings.PHOTO_RETRY_MAX_MS, settings.PHOTO_RETRY_BASE_MS * 2 ** (attempt - 1))
    return int(ceiling / 2 + random.uniform(0, ceiling / 2))


def photo_analyze(
    *,
    photo_id: str,
    engine: AiEngine | None = None,
    provider: AiProvider | None = None,
    booked: bool = False,
) -> Outcome:
    """Analyse one photo. Safe to run any number of times for one photo: the claim decides.

    `engine` (or a single `provider`) replaces the configured providers, for tests and tools.
    `booked`: this message was deferred for a provider slot (photos/services/slots.py).
    """
    if engine is None:
        # Before the claim: built the first time in a process, the engine imports the provider's
        # SDK (seconds on a busy machine), which must not happen while holding a connection.
        engine = (
            AiEngine([provider]) if provider else engine_from_settings(redis_client=broker_redis())
        )
    slot = quota_slot(photo_id=photo_id, engine=engine, booked=booked)
    if isinstance(slot, Wait):
        return Outcome.DEFERRED
    if slot is not None:
        engine = engine.with_slot(slot)
    spent = Spent()
    try:
        claim = photo_claim(photo_id=photo_id)
        if claim is None:
            return Outcome.SKIPPED
        if isinstance(claim, Busy):
            # A live worker has it. This message may be a redelivery or a duplicate: look again
            # later, so that if that worker dies the photo is finished rather than stranded.
            photo_recheck_later(photo_id=photo_id, delay_ms=claim.recheck_ms)
            return Outcome.BUSY
        try:
            return _analyze_claimed(claim, engine=engine, spent=spent)
        except (OperationalError, InterfaceError):
            # Our database failed (a dropped connection), not the provider: hand the photo back
            # and let Dramatiq's retry of this message claim it again.
            photo_give_back(photo_id=claim.photo.pk, token=claim.token)
            raise
    finally:
        if slot is not None:
            quota_release(engine=engine, slot=slot, spent=spent)


def _analyze_claimed(claim: Claim, *, engine: AiEngine, spent: Spent) -> Outcome:
    photo = claim.photo
    donor = _identical_done(photo, engine) if claim.identical_done and not claim.forced else None
    if donor is not None:
        return _store_reused(claim, donor)
    try:
        paid = _answers_paid_for(photo) if claim.answers_on_record else {}
        # Reading the image (S3: a network call) and the preflight (tens of ms of CPU for a
        # phone photo) need no connection: with many threads sharing a few, holding one here
        # made the others queue for the pool.
        _release_connection()
        with photo.image.open("rb") as handle:
            original = handle.read()
        prepared = _preflight(original)
        if not photo_mark_stage(claim=claim, stage=Stage.ANALYSING):
            return Outcome.FENCED
        recorder = MetricRecorder(photo, prepared.as_meta(), spent)
        analysis, room_type = _ask_engine(claim, prepared, engine.with_recorder(recorder), paid)
    except (OperationalError, InterfaceError):
        raise  # the database's failure, not the photo's: see photo_analyze
    except Exception as exc:  # every failure becomes data: a code, a message, a retry decision
        error = error_from_exception(exc)
        if error.code == ErrorCode.UNKNOWN:
            logger.exception("photo %s: unexpected failure", photo.pk)
        return _store_failure(claim, error)
    if not photo_store_done(claim=claim, analysis=analysis, room_type=room_type):
        return Outcome.FENCED
    return Outcome.DONE


def _identical_done(photo: Photo, engine: AiEngine) -> Photo | None:
    """A DONE photo of the same project with the same stored bytes, analysed by the model we
    would ask, with this prompt version and for the same room type (the client's, or none):
    its answer is this photo's too (a phone app that retried an upload sent the bytes twice)."""
    provider = engine.providers[0]
    same = Photo.objects.filter(
        project_id=photo.project_id,
        sha256=photo.sha256,
        status=Photo.Status.DONE,
        analysis__promptVersion=PROMPT_VERSION,
        analysis__provider=provider.name,
        # OpenAI answers with a dated snapshot of the model asked for.
        analysis__model__startswith=provider.model,
    ).exclude(pk=photo.pk)
    if photo.room_type:
        same = same.filter(room_type=photo.room_type).exclude(analysis__has_key="roomConfidence")
    else:
        same = same.filter(analysis__has_key="roomConfidence")  # its room was detected too
    return same.only("pk", "run", "room_type", "analysis").order_by("processed_at").first()


def _store_reused(claim: Claim, donor: Photo) -> Outcome:
    """DONE with the donor's analysis, naming the photo that paid for it; no provider call."""
    assert donor.analysis is not None
    origin = donor.analysis.get("reusedFrom") or str(donor.pk)
    analysis = donor.analysis | {"reusedFrom": origin}
    if not photo_store_done(claim=claim, analysis=analysis, room_type=donor.room_type or ""):
        return Outcome.FENCED
    answer_reuse_record(
        photo_id=claim.photo.pk,
        project_id=claim.photo.project_id,
        reused_from=origin,
        saved_usd=answer_cost(photo_id=donor.pk, run=donor.run),
    )
    return Outcome.DONE


def _release_connection() -> None:
    """Give the database connection back before waiting on the provider (seconds, maybe tens):
    with the connection pool this returns it to the pool, so 2 processes × 64 threads need far
    fewer than 128 connections. Inside a transaction (tests) there is nothing to release."""
    if settings.DB_RELEASE_DURING_AI_CALLS and not connection.in_atomic_block:
        connection.close()


def _answers_paid_for(photo: Photo) -> dict[str, RoomGuess | PhotoAnalysis]:
    """Provider answers already bought in this run (a crash after the call, before the result was
    stored): reused instead of paid for again."""
    rows = ProviderAnswer.objects.filter(
        photo_id=photo.pk, run=photo.run, prompt_version=PROMPT_VERSION
    ).values_list("operation", "answer")
    return {operation: answer_from_json(operation, answer) for operation, answer in rows}


def _preflight(original: bytes) -> PreparedImage:
    try:
        return image_preflight(original)
    except Exception as exc:
        raise AiError(ErrorCode.BAD_INPUT, f"the stored image cannot be prepared: {exc}") from exc


class MetricRecorder:
    """Writes one AiMetric row per provider call, with the photo's ids and the preflight figures."""

    def __init__(
        self, photo: Photo, image_meta: dict[str, int], spent: Spent | None = None
    ) -> None:
        self.photo = photo
        self.spent = spent
        self.meta: dict[str, Any] = {
            "photoId": str(photo.pk),
            "projectId": str(photo.project_id),
            "userId": photo.project.owner_id,
            "run": photo.run,
            "promptVersion": PROMPT_VERSION,
            **image_meta,
        }

    def __call__(self, record: CallRecord) -> None:
        if self.spent is not None:
            self.spent.calls.append(record)
        meta = self.meta | record.extra
        if record.error is not None:
            meta["error"] = record.error.message
        row: dict[str, Any] = {
            "provider": record.provider,
            "model": record.model,
            "operation": record.operation,
            "latency_ms": record.latency_ms,
            "success": record.success,
            "error_type": record.error.code if record.error else None,
            "retries": max(self.photo.attempts - 1, 0),
            "tokens_in": record.tokens_in,
            "tokens_out": record.tokens_out,
            "cost_usd": record.cost_usd,
            "price_source": record.price_source,
            "photo_id": self.photo.pk,
            "project_id": self.photo.project_id,
            "meta": meta,
        }
        try:
            self._store(row, record.answer)
        except (OperationalError, InterfaceError):
            if connection.in_atomic_block:
                raise
            # An answer we paid for (reused by the next attempt): a connection PostgreSQL
            # dropped must not lose it. Once more, on a fresh connection.
            connection.close()
            self._store(row, record.answer)
        if not record.success:
            # The engine's next step is another provider call (one more try, or the next
            # provider): do not wait on it holding a connection. After a success the pipeline
            # releases before its own next call, and keeps the connection for storing the result
            # after the last one.
            _release_connection()

    def _store(self, row: dict[str, Any], answer: dict[str, Any] | None) -> None:
        # The answer first: once it is kept, a retry of this write (or of the whole photo)
        # never pays for it again; a conflict means a zombie worker of this run kept it already.
        if answer is not None:
            ProviderAnswer.objects.bulk_create(
                [
                    ProviderAnswer(
                        photo_id=self.photo.pk,
                        run=self.photo.run,
                        operation=row["operation"],
                        prompt_version=PROMPT_VERSION,
                        answer=answer,
                    )
                ],
                ignore_conflicts=True,
            )
        aimetric_record(**row)


def _ask_engine(
    claim: Claim,
    prepared: PreparedImage,
    engine: AiEngine,
    paid: dict[str, RoomGuess | PhotoAnalysis],
) -> tuple[dict[str, Any], str]:
    """One call: the items, and the room too when the client gave no room type. The room in a
    call of its own first only where AI_ROOM_SEPARATE_CALL asks for it."""
    photo = claim.photo
    image = ImageBytes(prepared.data)  # base64-encoded once for every call
    room_type: str | None = photo.room_type or None
    room_confidence = None
    if room_type is None and settings.AI_ROOM_SEPARATE_CALL:
        guess = paid.get("detect_room")
        if not isinstance(guess, RoomGuess):
            guess = engine.detect_room(image)
        room_type, room_confidence = guess.room_type, guess.confidence
    catalogue = volume_catalogue()
    result = paid.get("analyze_photo")
    if not isinstance(result, PhotoAnalysis) or (room_type is None and result.room_type is None):
        keys = catalogue.keys()
        # The key list is cached, but re-read once a minute: that read must not keep its
        # connection for the whole call (with a pool of 10, ten threads did, for seconds each).
        _release_connection()
        result = engine.analyze_photo(image, room_type, keys)
    photo_mark_stage(claim=claim, stage=Stage.SAVING)  # fenced or not: the DONE write decides
    if room_type is None:
        assert result.room_type is not None  # asked without a room type: the answer has one
        room_type, room_confidence = result.room_type, result.room_confidence
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


def _store_failure(claim: Claim, error: AiError) -> Outcome:
    attempts = claim.photo.attempts
    delay = None
    if error.retryable and attempts < settings.PHOTO_MAX_ATTEMPTS:
        delay = retry_delay_ms(attempt=attempts, retry_after_s=error.retry_after_s)
    stored = photo_store_failure(
        claim=claim, code=error.code, message=error.message, retry_delay_ms=delay
    )
    if not stored:
        return Outcome.FENCED
    return Outcome.ERROR if delay is None else Outcome.RETRY
