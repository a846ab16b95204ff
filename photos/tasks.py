"""Dramatiq actors of the photos app: thin adapters over services (found by `rundramatiq`)."""

from __future__ import annotations

import dramatiq
from django.conf import settings

from infra.broker import PHOTO_QUEUE
from photos.services.analysis import photo_analyze


@dramatiq.actor(
    queue_name=PHOTO_QUEUE,
    # Provider failures are retried by our own policy (attempts live in the database). Dramatiq's
    # retries only cover infrastructure errors (database down) and redeliver the same message.
    max_retries=5,
    min_backoff=1_000,
    max_backoff=30_000,
    time_limit=settings.PHOTO_LEASE_SECONDS * 1000,
)
def analyze_photo(photo_id: str) -> None:
    """Analyse one photo. Safe to run twice: the claim decides who works."""
    photo_analyze(photo_id=photo_id)
