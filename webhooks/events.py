"""Events into the outbox: one WebhookDelivery per (event, subscribed endpoint), written in the
caller's transaction, each sent to the webhook-deliver queue on commit."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from webhooks.models import WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)


def webhook_body(*, event_type: str, data: dict[str, Any], at: Any = None) -> str:
    """The JSON body of a Standard Webhooks event: `{"type", "timestamp", "data"}`."""
    timestamp = (at or timezone.now()).isoformat().replace("+00:00", "Z")
    payload = {"type": event_type, "timestamp": timestamp, "data": data}
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)


def webhook_event_emit(
    *, owner_id: Any = None, project_id: Any = None, event_type: str, data: Callable[[], Any]
) -> list[WebhookDelivery]:
    """Write the deliveries of one event to the owner's enabled endpoints that subscribe to it
    (the owner named directly, or as the project's), in the current transaction; `data` is
    called only when some endpoint wants the event. Each delivery's message goes on commit.

    One query when nobody listens: this runs inside the DONE transaction of every photo.
    """
    endpoints = WebhookEndpoint.objects.filter(enabled=True)
    if owner_id is not None:
        endpoints = endpoints.filter(owner_id=owner_id)
    else:
        endpoints = endpoints.filter(owner__projects=project_id)
    wanted = [
        endpoint_id
        for endpoint_id, events in endpoints.values_list("id", "events")
        if event_type in (events or [])
    ]
    if not wanted:
        return []
    return webhook_deliveries_create(
        endpoint_ids=wanted,
        event_type=event_type,
        body=webhook_body(event_type=event_type, data=data()),
    )


def webhook_deliveries_create(
    *, endpoint_ids: list[uuid.UUID], event_type: str, body: str
) -> list[WebhookDelivery]:
    """The outbox rows, due now; their messages are sent after the commit."""
    now = timezone.now()
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            endpoint_id=endpoint_id,
            event_type=event_type,
            body=body,
            next_attempt_at=now,
            sent_at=now,
        )
        for endpoint_id in endpoint_ids
    )
    for delivery in deliveries:
        webhook_send_on_commit(delivery_id=delivery.pk)
    return deliveries


def webhook_send(*, delivery_id: Any, delay_ms: int | None = None) -> None:
    """Send the delivery's message now. A broker failure is logged, not raised: the row stays
    owed, and the relay sends it once Redis is back."""
    from webhooks.tasks import deliver_webhook  # the actor imports the work, which imports us

    try:
        deliver_webhook.send_with_options(args=(str(delivery_id),), delay=delay_ms or None)
    except Exception:
        logger.exception("could not send webhook-deliver for %s; it stays owed", delivery_id)


def webhook_send_on_commit(*, delivery_id: Any, delay_ms: int | None = None) -> None:
    transaction.on_commit(partial(webhook_send, delivery_id=delivery_id, delay_ms=delay_ms))
