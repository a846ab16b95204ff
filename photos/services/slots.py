"""Provider slots for photo analyses (ai_engine/quota.py): taken before the claim, from the
photo's row (its project, its priority, its stored image size for the token estimate).

Before the claim rather than after the preflight: a photo denied a slot is then deferred without
being claimed (no attempt spent, no lease, no write), without reading its image (S3) or
preflighting it, and an answer already paid for (ProviderAnswer, reused on a redelivery) is
untouched: the slot is released, refunded, when no call was made.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from ai_engine.engine import AiEngine, CallRecord
from ai_engine.prompts import items_prompt, items_schema
from ai_engine.quota import Cost, Slot, Wait
from imaging.preflight import estimate_image_tokens, target_size
from photos.lifecycle import photo_defer
from photos.models import Photo, Project
from photos.volumes import volume_catalogue

logger = logging.getLogger(__name__)
#: The tenant of a slot taken when only a 429's back-off applies (no project read).
NO_TENANT = "-"


@dataclass
class Spent:
    """The provider calls of one attempt, as MetricRecorder sees them: what the quota slot
    really cost."""

    calls: list[CallRecord] = field(default_factory=list)

    def cost(self, slot: Slot) -> Cost:
        mine = [record for record in self.calls if record.provider == slot.provider]
        per_call_in = slot.cost.tokens_in // max(slot.cost.requests, 1)
        # A failed call reports no usage; the provider still counted its input against us.
        tokens_in = sum(record.tokens_in or per_call_in for record in mine)
        return Cost(len(mine), tokens_in, sum(record.tokens_out for record in mine))


def quota_slot(*, photo_id: str, engine: AiEngine, booked: bool = False) -> Slot | Wait | None:
    """A provider slot for the photo's call, taken before the claim: a photo that cannot get one
    is deferred (its message re-sent, delayed) without being claimed, so it spends no attempt,
    reads no image and writes nothing. None: no call is likely (the photo is not owed), or the
    engine has no quota (tests and tools passing their own provider)."""
    quota = engine.quota
    if quota is None:
        return None
    provider = engine.providers[0]  # a fallback provider's calls are not gated
    if not quota.limits_anything:
        # Only a 429's back-off can hold the call: no need to read the photo for it.
        slot = quota.acquire(
            provider=provider.name, model=provider.model, tenant=NO_TENANT, cost=Cost(1, 0, 0)
        )
        if isinstance(slot, Wait):
            photo_defer(photo_id=photo_id, delay_ms=_jittered(slot.delay_ms), high=False)
        return slot
    row = (
        Photo.objects.filter(pk=photo_id)
        .values(
            "project_id",
            "project__priority",
            "image_width",
            "image_height",
            "room_type",
            "status",
            "queued_at",
        )
        .first()
    )
    if row is None or (row["queued_at"] is None and row["status"] != Photo.Status.PROCESSING):
        return None  # nothing owed: the claim will say so
    high = row["project__priority"] == Project.Priority.HIGH
    slot = quota.acquire(
        provider=provider.name,
        model=provider.model,
        tenant=str(row["project_id"]),
        cost=_estimated_cost(row),
        weight=settings.AI_PRIORITY_HIGH_WEIGHT if high else 1.0,
        booked=booked,
    )
    if isinstance(slot, Wait):
        logger.debug("photo %s deferred %d ms: %s", photo_id, slot.delay_ms, slot.reason)
        photo_defer(photo_id=photo_id, delay_ms=_jittered(slot.delay_ms), high=high)
    return slot


def quota_release(*, engine: AiEngine, slot: Slot, spent: Spent) -> None:
    """Give the slot back, charged what the calls really cost (nothing when an answer was
    reused); a project with no photo left owed stops counting for the fair shares."""
    assert engine.quota is not None
    engine.quota.release(slot, used=spent.cost(slot))
    if slot.tenant == NO_TENANT:
        return
    waiting = Photo.objects.filter(
        project_id=slot.tenant, status=Photo.Status.PENDING, queued_at__isnull=False
    )
    if not waiting.exists():
        engine.quota.tenant_idle(slot.tenant)


def _jittered(delay_ms: int) -> int:
    # The booking already spaces a project's photos; a little jitter spreads equal bookings of
    # different projects.
    return delay_ms + random.randint(0, 50)


def _estimated_cost(row: Mapping[str, Any]) -> Cost:
    """The call's cost before it is made: the image's tokens at the size the preflight will
    send, the prompt's and schema's at ~4 characters a token, AI_QUOTA_OUTPUT_ESTIMATE out."""
    width, height = row["image_width"], row["image_height"]
    image = estimate_image_tokens(*target_size(width, height)) if width and height else 0
    room_type = row["room_type"] or None
    keys = volume_catalogue().keys()
    text = len(items_prompt(room_type, keys)) + len(json.dumps(items_schema(room_type)))
    calls = 2 if room_type is None and settings.AI_ROOM_SEPARATE_CALL else 1
    return Cost(calls, calls * (image + text // 4), calls * settings.AI_QUOTA_OUTPUT_ESTIMATE)
