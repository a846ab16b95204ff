"""Delivering one outbox row: claim, sign, POST, record; retries and giving up.

| move     | from                                              | to                          |
|----------|---------------------------------------------------|-----------------------------|
| claim    | PENDING, due, endpoint enabled, no live lease     | PENDING, leased, attempts+1 |
| success  | our claimed attempt, 2xx                          | DELIVERED                   |
| retry    | our claimed attempt, anything else, steps left    | PENDING, due later, sent    |
| give up  | our claimed attempt, no step left                 | FAILED                      |
| re-send  | any (staff), or PENDING of a re-enabled endpoint  | PENDING, due now, sent      |

Each move is one conditional UPDATE; a claimed attempt is fenced by its number (`attempts`), so
a worker whose lease expired (killed, or stuck past the lease) cannot overwrite a newer attempt.
No transaction is open during the request: claim, then POST, then record in a short one.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks import Webhook

from webhooks.addresses import UnsafeUrl, webhook_resolve, webhook_url_parse
from webhooks.events import webhook_send_on_commit
from webhooks.http import HttpAnswer, http_post
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)
Status = WebhookDelivery.Status
#: A message may run this much before its due time (clocks of two hosts) and still claim.
EARLY = timedelta(seconds=1)
USER_AGENT = "Moverz-Webhooks/1"


def lease_seconds() -> float:
    """How long a claimed attempt may take before another worker may take it over."""
    return settings.WEBHOOK_TIMEOUT_S + 20


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None
    next_attempt_at: datetime | None


def webhook_signature(*, secrets: list[str], msg_id: str, at: datetime, body: str) -> str:
    """`webhook-signature`: one `v1,<base64>` per secret, space-separated (several during a
    rotation's overlap; a receiver accepts any that matches)."""
    return " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets)


def endpoint_secrets(endpoint: WebhookEndpoint, *, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during its overlap."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def webhook_deliver(*, delivery_id: str) -> Outcome | None:
    """One attempt of a delivery, if it is due and nobody else holds it (None: nothing to do).

    Safe to run twice for one message: the claim decides who sends."""
    now = timezone.now()
    claimed = (
        WebhookDelivery.objects.filter(
            pk=delivery_id,
            status=Status.PENDING,
            next_attempt_at__lte=now + EARLY,
            endpoint__enabled=True,
        )
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .update(
            attempts=F("attempts") + 1,
            lease_expires_at=now + timedelta(seconds=lease_seconds()),
            updated_at=now,
        )
    )
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    started = time.monotonic()
    answer = _attempt(delivery, deadline=started + settings.WEBHOOK_TIMEOUT_S)
    latency_ms = int((time.monotonic() - started) * 1000)
    return _record(delivery, answer, latency_ms=latency_ms)


def _attempt(delivery: WebhookDelivery, *, deadline: float) -> HttpAnswer:
    endpoint = delivery.endpoint
    try:
        target = webhook_url_parse(endpoint.url)
        address = webhook_resolve(target, timeout_s=deadline - time.monotonic())
    except UnsafeUrl as refused:
        return HttpAnswer(None, error=f"refused: {refused}"[:300])
    at = datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": webhook_signature(
            secrets=endpoint_secrets(endpoint, now=timezone.now()),
            msg_id=delivery.webhook_id,
            at=at,
            body=delivery.body,
        ),
    }
    return http_post(
        target=target,
        address=address,
        body=delivery.body.encode(),
        headers=headers,
        deadline=deadline,
    )


def retry_delay_s(*, step: int, answer: HttpAnswer, now: datetime) -> float | None:
    """Seconds until the next attempt after failure number `step` (1-based), None when the
    schedule is spent. `Retry-After` on a 429 or 503 wins over the schedule (at most its longest
    step); otherwise the schedule's step, drawn from ±10 % so a receiver's recovery is not met by
    every retry at once."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    if step > len(schedule):
        return None
    if answer.status in (429, 503) and answer.retry_after:
        wait = parse_retry_after(answer.retry_after, now=now)
        if wait is not None:
            return min(wait, max(schedule))
    return float(schedule[step - 1]) * random.uniform(0.9, 1.1)


def parse_retry_after(value: str, *, now: datetime) -> float | None:
    """`Retry-After` as seconds (a number, or an HTTP date); None when unreadable."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def _record(delivery: WebhookDelivery, answer: HttpAnswer, *, latency_ms: int) -> Outcome:
    now = timezone.now()
    endpoint = delivery.endpoint
    ok = answer.status is not None and 200 <= answer.status < 300
    error = answer.error or ("" if ok else f"HTTP {answer.status}")
    ours = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=Status.PENDING, attempts=delivery.attempts
    )
    common: dict[str, Any] = {
        "lease_expires_at": None,
        "last_status_code": answer.status,
        "last_error": error[:300],
        "updated_at": now,
    }
    next_at: datetime | None = None
    with transaction.atomic():
        if ok:
            stored = ours.update(status=Status.DELIVERED, delivered_at=now, **common)
            WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(
                failing_since=None
            )
        else:
            delay = retry_delay_s(step=delivery.step + 1, answer=answer, now=now)
            if delay is None:
                stored = ours.update(status=Status.FAILED, step=F("step") + 1, **common)
            else:
                next_at = now + timedelta(seconds=delay)
                stored = ours.update(
                    step=F("step") + 1, next_attempt_at=next_at, sent_at=now, **common
                )
                if stored:
                    webhook_send_on_commit(delivery_id=delivery.pk, delay_ms=int(delay * 1000))
            _count_failure(endpoint, now=now)
        WebhookAttempt.objects.create(
            delivery=delivery,
            endpoint=endpoint,
            number=delivery.attempts,
            status_code=answer.status,
            latency_ms=latency_ms,
            response_excerpt=answer.excerpt,
            error=error[:300],
            next_retry_at=next_at if stored else None,
        )
    if not stored:
        logger.warning("webhook %s: attempt %d outlived its lease", delivery.pk, delivery.attempts)
    return Outcome(delivered=ok, status_code=answer.status, next_attempt_at=next_at)


def _count_failure(endpoint: WebhookEndpoint, *, now: datetime) -> None:
    """Start the endpoint's failing streak, and disable it once the streak has lasted
    WEBHOOK_DISABLE_AFTER_S with no success."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(
        failing_since=now
    )
    limit = timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_S)
    disabled = WebhookEndpoint.objects.filter(
        pk=endpoint.pk, enabled=True, failing_since__lte=now - limit
    ).update(
        enabled=False,
        disabled_reason=(
            f"Disabled automatically on {now:%Y-%m-%d %H:%M} UTC: no delivery succeeded for "
            f"{_duration(limit)}. Re-enable it to resume delivery."
        ),
        updated_at=now,
    )
    if disabled:
        logger.warning("webhook endpoint %s disabled: failing since %s", endpoint.pk, now - limit)


def _duration(span: timedelta) -> str:
    return f"{span.days} days" if span.days >= 1 else f"{int(span.total_seconds())} seconds"


def webhook_resend(*, delivery_ids: list[uuid.UUID] | list[str]) -> int:
    """Staff's re-send: each delivery becomes PENDING and due now with a fresh retry budget, the
    same webhook-id (receivers that already have it deduplicate). Returns how many."""
    now = timezone.now()
    sent = 0
    for delivery_id in delivery_ids:
        with transaction.atomic():
            moved = (
                WebhookDelivery.objects.filter(pk=delivery_id)
                .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
                .update(
                    status=Status.PENDING,
                    step=0,
                    next_attempt_at=now,
                    sent_at=now,
                    updated_at=now,
                )
            )
            if moved:
                webhook_send_on_commit(delivery_id=delivery_id)
                sent += moved
    return sent
