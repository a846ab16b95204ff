"""Queue figures read from Redis (the broker's own keys) and from the database."""

from __future__ import annotations

from typing import TypedDict

import redis
from django.conf import settings
from django.db.models import Count

from infra.broker import broker_redis
from inventory.models import InventorySnapshot
from inventory.tasks import INVENTORY_QUEUE, inventory_failed_key
from photos.models import Photo
from photos.tasks import PHOTO_QUEUE


class QueueStats(TypedDict):
    name: str
    waiting: int
    delayed: int
    active: int
    completed: int
    failed: int
    dead: int
    total: int


def _broker_counts(client: redis.Redis, queue: str) -> dict[str, int]:
    ns = settings.DRAMATIQ_NAMESPACE
    ack_keys = list(client.scan_iter(match=f"{ns}:__acks__.*", count=1000))
    pipe = client.pipeline(transaction=False)
    pipe.llen(f"{ns}:{queue}")
    pipe.llen(f"{ns}:{queue}.DQ")
    pipe.zcard(f"{ns}:{queue}.XQ")
    for key in ack_keys:
        pipe.scard(key)
    waiting, delayed_ready, dead, *held = pipe.execute()
    active = delayed_held = 0
    for key, count in zip(ack_keys, held, strict=True):
        name = key.decode() if isinstance(key, bytes) else key
        if name.endswith(f".{queue}.DQ"):
            delayed_held += count  # a worker holds delayed messages until their ETA
        elif name.endswith(f".{queue}"):
            active += count
    return {
        "waiting": waiting,
        "delayed": delayed_ready + delayed_held,
        "active": active,
        "dead": dead,
    }


def queue_stats() -> list[QueueStats]:
    """Figures for the two queues; their meaning is documented in README ("Queues")."""
    client = broker_redis()
    photo = _broker_counts(client, PHOTO_QUEUE)
    by_status = dict(
        Photo.objects.filter(status__in=[Photo.Status.DONE, Photo.Status.ERROR])
        .values_list("status")
        .annotate(n=Count("id"))
    )
    inventory = _broker_counts(client, INVENTORY_QUEUE)
    inventory_failed = int(client.get(inventory_failed_key()) or 0)
    rows: list[QueueStats] = []
    for name, broker, completed, failed in (
        (PHOTO_QUEUE, photo, by_status.get("DONE", 0), by_status.get("ERROR", 0)),
        (INVENTORY_QUEUE, inventory, InventorySnapshot.objects.count(), inventory_failed),
    ):
        total = broker["waiting"] + broker["delayed"] + broker["active"] + broker["dead"]
        rows.append(
            QueueStats(
                name=name,
                completed=completed,
                failed=failed,
                total=total + completed + failed,
                **broker,  # type: ignore[typeddict-item]
            )
        )
    return rows
