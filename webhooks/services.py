"""Endpoints: registration, changes, secrets and their rotation, the test ping."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from webhooks.events import webhook_body, webhook_deliveries_create, webhook_send_on_commit
from webhooks.models import EVENTS, PING, WebhookDelivery, WebhookEndpoint

#: Endpoints one user may register.
MAX_ENDPOINTS_PER_USER = 20


class EndpointLimit(Exception):
    pass


def webhook_secret_new() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def endpoint_for_owner(*, owner: Any, endpoint_id: object) -> WebhookEndpoint:
    """The owner's endpoint, or 404 as if it did not exist (also for someone else's)."""
    try:
        pk = endpoint_id if isinstance(endpoint_id, uuid.UUID) else uuid.UUID(str(endpoint_id))
    except ValueError:
        raise Http404("No such webhook endpoint.") from None
    endpoint = WebhookEndpoint.objects.filter(pk=pk, owner=owner).first()
    if endpoint is None:
        raise Http404("No such webhook endpoint.")
    return endpoint


def endpoint_create(
    *, owner: Any, url: str, events: list[str] | None = None, description: str = ""
) -> WebhookEndpoint:
    """Register an endpoint (the URL already validated); its secret is returned this once."""
    if WebhookEndpoint.objects.filter(owner=owner).count() >= MAX_ENDPOINTS_PER_USER:
        raise EndpointLimit(f"A user may register at most {MAX_ENDPOINTS_PER_USER} endpoints.")
    return WebhookEndpoint.objects.create(
        owner=owner,
        url=url,
        events=list(events) if events else list(EVENTS),
        description=description,
        secret=webhook_secret_new(),
    )


def endpoint_update(*, endpoint: WebhookEndpoint, changes: dict[str, Any]) -> WebhookEndpoint:
    """Change url, events, description or enabled; re-enabling resumes its owed deliveries."""
    for name in ("url", "events", "description"):
        if name in changes:
            setattr(endpoint, name, changes[name])
    endpoint.save(update_fields=["url", "events", "description", "updated_at"])
    if "enabled" in changes:
        if changes["enabled"]:
            endpoint_enable(endpoint_ids=[endpoint.pk])
        else:
            endpoint_disable(endpoint_ids=[endpoint.pk], reason="Disabled by its owner.")
        endpoint.refresh_from_db()
    return endpoint


def endpoint_enable(*, endpoint_ids: list[Any]) -> int:
    """Enable endpoints (clearing the reason and the failing streak) and send what they are
    owed, due now. Returns how many endpoints were enabled."""
    now = timezone.now()
    enabled = 0
    for endpoint_id in endpoint_ids:
        with transaction.atomic():
            moved = WebhookEndpoint.objects.filter(pk=endpoint_id, enabled=False).update(
                enabled=True, disabled_reason="", failing_since=None, updated_at=now
            )
            if not moved:
                continue
            enabled += 1
            owed = WebhookDelivery.objects.filter(
                endpoint_id=endpoint_id, status=WebhookDelivery.Status.PENDING
            )
            ids = list(owed.values_list("id", flat=True))
            owed.update(next_attempt_at=now, sent_at=now, updated_at=now)
            for delivery_id in ids:
                webhook_send_on_commit(delivery_id=delivery_id)
    return enabled


def endpoint_disable(*, endpoint_ids: list[Any], reason: str) -> int:
    """Stop delivering to these endpoints; what they are owed waits for a re-enable."""
    return WebhookEndpoint.objects.filter(pk__in=endpoint_ids, enabled=True).update(
        enabled=False, disabled_reason=reason[:300], updated_at=timezone.now()
    )


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """A new secret; the current one keeps signing, beside it, for WEBHOOK_SECRET_OVERLAP_S."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = timezone.now() + timedelta(
        seconds=settings.WEBHOOK_SECRET_OVERLAP_S
    )
    endpoint.secret = webhook_secret_new()
    endpoint.save(
        update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"]
    )
    return endpoint


def endpoint_ping(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a `ping` event to the endpoint (whatever it subscribes to), delivered and logged
    like any other."""
    data = {"endpointId": str(endpoint.pk), "message": "Test event from Moverz."}
    with transaction.atomic():
        (delivery,) = webhook_deliveries_create(
            endpoint_ids=[endpoint.pk],
            event_type=PING,
            body=webhook_body(event_type=PING, data=data),
        )
    return delivery
