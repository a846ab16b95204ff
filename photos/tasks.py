"""Dramatiq actors of the photos app: thin adapters over services (found by `rundramatiq`)."""

from __future__ import annotations

from typing import Any

import dramatiq
from django.conf import settings

from infra.broker import PHOTO_HIGH_QUEUE, PHOTO_QUEUE
from photos.services.analysis import photo_analyze

OPTIONS: dict[str, Any] = {
    # Provider failures are retried by our own policy (attempts live in the database). Dramatiq's
    # retries only cover infrastructure errors (database down) and redeliver the same message.
    "max_retries": 5,
    "min_backoff": 1_000,
    "max_backoff": 30_000,
    "time_limit": settings.PHOTO_LEASE_SECONDS * 1000,
}


@dramatiq.actor(queue_name=PHOTO_QUEUE, priority=10, **OPTIONS)
def analyze_photo(photo_id: str, booked: bool = False) -> None:
    """Analyse one photo. Safe to run twice: the claim decides who works. `booked`: the message
    was deferred for a provider slot and comes at the time it was given."""
    photo_analyze(photo_id=photo_id, booked=booked)


# The same work for high-priority projects, on its own queue: never behind a normal backlog in
# Redis, and (lower is first) ahead of normal messages a worker has prefetched.
@dramatiq.actor(queue_name=PHOTO_HIGH_QUEUE, priority=0, **OPTIONS)
def analyze_photo_high(photo_id: str, booked: bool = False) -> None:
    """Analyse one photo of a high-priority project (see `analyze_photo`)."""
    photo_analyze(photo_id=photo_id, booked=booked)
