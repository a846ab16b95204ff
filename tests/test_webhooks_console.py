"""What staff see of webhooks: endpoints, deliveries and attempts in the admin (never a
secret), the re-send action, the queues page and /metrics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from infra.broker import WEBHOOK_QUEUE
from tests.conftest import Queue, flush_namespace
from tests.factories import make_user
from tests.webhook_receiver import Receiver, Reply
from webhooks.delivery import webhook_deliver
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import endpoint_create, endpoint_ping, endpoint_rotate_secret

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db: Any) -> Client:
    client = Client()
    client.force_login(make_user(staff=True, is_superuser=True))
    return client


@pytest.fixture
def failed(user: Any, receiver: Receiver, local_webhooks: None, settings: Any) -> WebhookDelivery:
    """An endpoint (its secret rotated) with one delivery given up after a 500."""
    settings.WEBHOOK_RETRY_SCHEDULE = []
    receiver.answer(Reply(500, body=b"receiver exploded"))
    endpoint = endpoint_create(owner=user, url=receiver.url)
    endpoint_rotate_secret(endpoint=endpoint)
    delivery = endpoint_ping(endpoint=endpoint)
    webhook_deliver(delivery_id=str(delivery.pk))
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    return delivery


def _secrets(delivery: WebhookDelivery) -> list[str]:
    endpoint = WebhookEndpoint.objects.get(pk=delivery.endpoint_id)
    return [endpoint.secret, endpoint.previous_secret]


def test_staff_see_endpoints_deliveries_and_attempts_but_never_a_secret(
    staff: Client, failed: WebhookDelivery
) -> None:
    endpoint_id = failed.endpoint_id
    pages = [
        "/admin/webhooks/webhookendpoint/",
        f"/admin/webhooks/webhookendpoint/{endpoint_id}/change/",
        "/admin/webhooks/webhookdelivery/",
        "/admin/webhooks/webhookdelivery/?status__exact=FAILED&event_type=ping",
        f"/admin/webhooks/webhookdelivery/{failed.pk}/change/",
        f"/admin/webhooks/webhookdelivery/?q={failed.webhook_id}",
        "/admin/webhooks/webhookattempt/",
        "/admin/webhooks/webhookattempt/?status_code=500",
        "/admin/queues/",
    ]
    for path in pages:
        response = staff.get(path)
        assert response.status_code == 200, path
        page = response.content.decode()
        for secret in _secrets(failed):
            assert secret not in page, path
            assert secret.removeprefix("whsec_") not in page, path
    delivery_page = staff.get(f"/admin/webhooks/webhookdelivery/{failed.pk}/change/")
    assert "receiver exploded" in delivery_page.content.decode()  # the attempt's excerpt


def test_the_resend_action_sends_again_with_the_same_id(
    staff: Client,
    failed: WebhookDelivery,
    receiver: Receiver,
    redis_client: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver.answer(Reply(200))
    flush_namespace(redis_client)

    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            "/admin/webhooks/webhookdelivery/",
            {"action": "resend", "_selected_action": [str(failed.pk)]},
            follow=True,
        )

    assert "1 delivery re-sent." in response.content.decode()
    (message,) = Queue(redis_client, WEBHOOK_QUEUE).all()
    assert message["args"] == [str(failed.pk)]
    outcome = webhook_deliver(delivery_id=str(failed.pk))
    assert outcome is not None and outcome.delivered
    assert {r.headers["webhook-id"] for r in receiver.requests} == {failed.webhook_id}


def test_queues_page_and_metrics_show_pending_failed_and_the_oldest_pending_age(
    staff: Client, failed: WebhookDelivery, user: Any
) -> None:
    endpoint = WebhookEndpoint.objects.get(pk=failed.endpoint_id)
    pending = endpoint_ping(endpoint=endpoint)
    WebhookDelivery.objects.filter(pk=pending.pk).update(
        created_at=timezone.now() - timedelta(minutes=2)
    )

    page = staff.get("/admin/queues/").content.decode()
    metrics = Client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()

    assert "Webhook deliveries" in page and WEBHOOK_QUEUE in page
    assert 'moverz_webhook_deliveries{status="pending"} 1.0' in metrics
    assert 'moverz_webhook_deliveries{status="failed"} 1.0' in metrics
    assert 'moverz_queue_finished{outcome="failed",queue="webhook-deliver"} 1.0' in metrics
    (age_line,) = [
        line for line in metrics.splitlines() if line.startswith("moverz_webhook_oldest_pending")
    ]
    assert 115 < float(age_line.split()[-1]) < 200
    assert 'moverz_metrics_section_up{section="webhooks"} 1.0' in metrics
