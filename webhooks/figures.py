"""Delivery figures for the queues page and /metrics."""

from __future__ import annotations

from typing import TypedDict

from django.db.models import Count, Min, Q
from django.utils import timezone

from webhooks.models import WebhookDelivery

Status = WebhookDelivery.Status


class DeliveryFigures(TypedDict):
    #: Owed to enabled endpoints (waiting for an attempt or a retry).
    pending: int
    #: Owed to disabled endpoints: they go out when the endpoint is enabled again.
    paused: int
    delivered: int
    failed: int
    #: Age in seconds of the oldest delivery owed to an enabled endpoint (0 when none is).
    oldest_pending_age_s: float


def webhook_delivery_figures() -> DeliveryFigures:
    """One GROUP BY over the deliveries by status, and the oldest pending one."""
    pending = Q(status=Status.PENDING, endpoint__enabled=True)
    counts = WebhookDelivery.objects.aggregate(
        pending=Count("id", filter=pending),
        paused=Count("id", filter=Q(status=Status.PENDING, endpoint__enabled=False)),
        delivered=Count("id", filter=Q(status=Status.DELIVERED)),
        failed=Count("id", filter=Q(status=Status.FAILED)),
        oldest=Min("created_at", filter=pending),
    )
    oldest = counts["oldest"]
    return DeliveryFigures(
        pending=counts["pending"] or 0,
        paused=counts["paused"] or 0,
        delivered=counts["delivered"] or 0,
        failed=counts["failed"] or 0,
        oldest_pending_age_s=(timezone.now() - oldest).total_seconds() if oldest else 0.0,
    )
