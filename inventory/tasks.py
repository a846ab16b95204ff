"""Dramatiq actors of the inventory app (found by `rundramatiq`)."""

from __future__ import annotations

import dramatiq
from django.conf import settings

from infra.broker import INVENTORY_QUEUE, broker_redis
from inventory.services import inventory_sync


def inventory_failed_key() -> str:
    """Redis counter of sync runs that raised (shown as `failed` on the queues page)."""
    return f"{settings.DRAMATIQ_NAMESPACE}:moverz:inventory-sync:failed"


@dramatiq.actor(queue_name=INVENTORY_QUEUE, max_retries=3, min_backoff=1_000, max_backoff=30_000)
def sync_inventory(project_id: str) -> None:
    """Write a fresh inventory snapshot of a project. Idempotent: it reads all DONE photos."""
    try:
        inventory_sync(project_id=project_id)
    except Exception:
        broker_redis().incr(inventory_failed_key())
        raise
