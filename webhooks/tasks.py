"""Dramatiq actors of the webhooks app (found by `rundramatiq`)."""

from __future__ import annotations

import dramatiq

from infra.broker import WEBHOOK_QUEUE
from webhooks.delivery import lease_seconds, webhook_deliver


@dramatiq.actor(
    queue_name=WEBHOOK_QUEUE,
    # Receiver failures are retried by our own schedule (WEBHOOK_RETRY_SCHEDULE, in the
    # database); Dramatiq's retries only cover our infrastructure (the database down).
    max_retries=3,
    min_backoff=1_000,
    max_backoff=30_000,
    time_limit=int(lease_seconds() * 1000),
)
def deliver_webhook(delivery_id: str) -> None:
    """One attempt of a webhook delivery. Safe to run twice: the claim decides who sends."""
    webhook_deliver(delivery_id=delivery_id)
