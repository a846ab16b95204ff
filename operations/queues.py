"""Queue figures read from the broker (infra.broker) and from the database."""

from __future__ import annotations

from typing import TypedDict

from django.db.models import Count

from infra.broker import (
    INVENTORY_QUEUE,
    PHOTO_HIGH_QUEUE,
    PHOTO_QUEUE,
    WEBHOOK_QUEUE,
    broker_redis,
    queue_counts,
)
from inventory.models import InventorySnapshot
from inventory.tasks import inventory_failed_key
from photos.models import Photo, Project
from webhooks.figures import webhook_delivery_figures


class QueueStats(TypedDict):
    name: str
    waiting: int
    delayed: int
    active: int
    completed: int
    failed: int
    dead: int
    total: int


def queue_stats() -> list[QueueStats]:
    """Figures for the queues; their meaning is documented in docs/operations.md ("Queues")."""
    client = broker_redis()
    broker = queue_counts(client, (PHOTO_HIGH_QUEUE, PHOTO_QUEUE, INVENTORY_QUEUE, WEBHOOK_QUEUE))
    # Finished photos by their project's priority: the queue their messages went through.
    by_status = {
        (priority == Project.Priority.HIGH, status): n
        for priority, status, n in Photo.objects.filter(
            status__in=[Photo.Status.DONE, Photo.Status.ERROR]
        )
        .order_by()
        .values_list("project__priority", "status")
        .annotate(n=Count("id"))
    }
    inventory_failed = int(client.get(inventory_failed_key()) or 0)
    deliveries = webhook_delivery_figures()
    rows: list[QueueStats] = []
    for name, completed, failed in (
        (PHOTO_HIGH_QUEUE, by_status.get((True, "DONE"), 0), by_status.get((True, "ERROR"), 0)),
        (PHOTO_QUEUE, by_status.get((False, "DONE"), 0), by_status.get((False, "ERROR"), 0)),
        (INVENTORY_QUEUE, InventorySnapshot.objects.count(), inventory_failed),
        (WEBHOOK_QUEUE, deliveries["delivered"], deliveries["failed"]),
    ):
        counts = broker[name]
        in_broker = counts["waiting"] + counts["delayed"] + counts["active"] + counts["dead"]
        rows.append(
            QueueStats(
                name=name,
                completed=completed,
                failed=failed,
                total=in_broker + completed + failed,
                **counts,
            )
        )
    return rows
