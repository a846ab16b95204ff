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

from ai_engine.engine import AiEngine, CallRecord, calls_cost
from ai_engine.prompts import ITEMS_OUTPUT_TOKENS, ROOM_OUTPUT_TOKENS, items_prompt, items_schema
from ai_engine.quota import Cost, Slot, Wait
from ai_engine.types import AiProvider
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
        return calls_cost(self.calls, slot)


def quota_slot(*, photo_id: str, engine: AiEngine, booked: bool = False) -> Slot | Wait | None:
    """A provider slot for the photo's call, taken before the claim: a photo that cannot get one
    is deferred (its message re-sent, delayed) without being claimed, so it spends no attempt,
    reads no image and writes nothing. None: no call is likely (the photo is not owed), or the
    engine has no quota (tests and tools passing their own provider)."""
    quota = engine.quota
    if quota is None:
        return None
    # A call that falls back to another provider takes that one's slot in the engine
    # (AiEngine.with_slot): the photo is claimed by then.
    provider = engine.providers[0]
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
        cost=_estimated_cost(row, provider),
        high=high,
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


def _estimated_cost(row: Mapping[str, Any], provider: AiProvider) -> Cost:
    """The calls' cost before they are made: in, the image's tokens at the size the preflight
    will send and the prompt's and schema's at ~4 characters a token; out, each call's
    `max_tokens`, which the providers reserve against the output-token limit until the answer
    ends (the real usage corrects it on release)."""
    width, height = row["image_width"], row["image_height"]
    image = estimate_image_tokens(*target_size(width, height)) if width and height else 0
    room_type = row["room_type"] or None
    keys = volume_catalogue().keys()
    text = len(items_prompt(room_type, keys)) + len(json.dumps(items_schema(room_type)))
    # The SDK providers' own budget; a provider without one is sent ours.
    items_out = getattr(provider, "max_tokens", ITEMS_OUTPUT_TOKENS)
    if room_type is None and settings.AI_ROOM_SEPARATE_CALL:
        return Cost(2, 2 * (image + text // 4), items_out + ROOM_OUTPUT_TOKENS)
    return Cost(1, image + text // 4, items_out)
