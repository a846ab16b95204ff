"""The webhooks side of the relay: deliveries owed whose message is nowhere in Redis (lost
with it, never sent because the process died after the commit, or held by a killed worker whose
lease has expired)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from infra.broker import WEBHOOK_QUEUE, live_message_ids
from webhooks.events import webhook_send_on_commit
from webhooks.models import WebhookDelivery

#: At most this many re-sends per pass: a backlog drains over a few passes.
BATCH = 1000


def webhooks_relay(*, client: Any, grace: timedelta | None = None) -> int:
    """Re-send owed deliveries that have no live message; returns how many were sent.

    Owed: PENDING, due for longer than the grace period, its endpoint enabled, no attempt in
    flight (or its lease expired). Each re-send is a compare-and-set on `sent_at`."""
    now = timezone.now()
    grace = grace if grace is not None else timedelta(seconds=settings.PHOTO_RELAY_GRACE_SECONDS)
    # The broker first: a message sent after this read is for a row due after `now - grace`.
    live = live_message_ids(client, WEBHOOK_QUEUE)
    owed = (
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at__lt=now - grace,
            endpoint__enabled=True,
        )
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .order_by("next_attempt_at")
        .values_list("id", "sent_at")[:BATCH]
    )
    sent = 0
    for delivery_id, sent_at in owed:
        if str(delivery_id) in live:
            continue
        with transaction.atomic():
            taken = WebhookDelivery.objects.filter(
                pk=delivery_id, status=WebhookDelivery.Status.PENDING, sent_at=sent_at
            ).update(sent_at=now)
            if taken:
                webhook_send_on_commit(delivery_id=delivery_id)
                sent += 1
    return sent
