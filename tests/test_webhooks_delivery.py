"""Webhook delivery: the outbox row in the state change's transaction, signed Standard Webhooks
requests to a real local receiver, retries with the same webhook-id, Retry-After, giving up,
the address check at send time, the relay, the five-day disable and re-enabling."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from ai_engine.fake import FakeProvider
from infra.broker import WEBHOOK_QUEUE
from inventory.services import inventory_sync
from photos.lifecycle import Claim, photo_claim, photo_enqueue, photo_store_failure
from photos.models import Photo
from photos.services.analysis import Outcome, photo_analyze
from tests.conftest import Queue, flush_namespace
from tests.factories import make_photo
from tests.webhook_receiver import Receiver, Reply
from webhooks.delivery import webhook_deliver, webhook_resend
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.relay import webhooks_relay
from webhooks.services import endpoint_create, webhook_secret_new

pytestmark = pytest.mark.django_db
Status = WebhookDelivery.Status


@pytest.fixture
def endpoint(user: Any, receiver: Receiver, local_webhooks: None) -> WebhookEndpoint:
    return endpoint_create(owner=user, url=receiver.url)


@pytest.fixture
def webhook_queue(redis_client: Any) -> Queue:
    return Queue(redis_client, WEBHOOK_QUEUE)


def _analyze(photo: Photo) -> None:
    photo_enqueue(photo=photo)
    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE


def _deliver(delivery: WebhookDelivery) -> Any:
    return webhook_deliver(delivery_id=str(delivery.pk))


def _due_now(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_a_done_photo_writes_its_delivery_in_the_done_transaction(
    endpoint: WebhookEndpoint, project: Any, webhook_queue: Queue
) -> None:
    rolled_back = make_photo(project=project)
    with pytest.raises(RuntimeError), transaction.atomic():
        _analyze(rolled_back)
        assert WebhookDelivery.objects.count() == 1  # written with the DONE UPDATE
        raise RuntimeError("the DONE transaction fails after the UPDATE")
    assert not WebhookDelivery.objects.exists()
    assert Photo.objects.get(pk=rolled_back.pk).status != Photo.Status.DONE

    photo = make_photo(project=project)
    _analyze(photo)

    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.event_type == "photo.done" and delivery.endpoint == endpoint
    assert delivery.status == Status.PENDING


def test_the_actor_delivers_a_signed_photo_done_with_the_photo_as_the_api_shows_it(
    endpoint: WebhookEndpoint,
    project: Any,
    api: APIClient,
    receiver: Receiver,
    webhook_queue: Queue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = make_photo(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        _analyze(photo)
    (message,) = webhook_queue.all()  # sent on commit, on its own queue
    delivery = WebhookDelivery.objects.get()
    assert message["args"] == [str(delivery.pk)]

    outcome = _deliver(delivery)

    assert outcome is not None and outcome.delivered
    (request,) = receiver.requests
    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert request.headers["webhook-id"] == delivery.webhook_id
    assert payload["type"] == "photo.done"
    assert payload["data"] == api.get(f"/api/photos/{photo.pk}").json()
    delivery.refresh_from_db()
    assert delivery.status == Status.DELIVERED and delivery.attempts == 1
    (attempt,) = WebhookAttempt.objects.all()
    assert (attempt.number, attempt.status_code, attempt.response_excerpt) == (1, 200, "ok")
    assert _deliver(delivery) is None  # a duplicate message sends nothing
    assert len(receiver.requests) == 1


def test_a_photo_error_and_an_inventory_update_are_delivered_too(
    endpoint: WebhookEndpoint, project: Any, api: APIClient, receiver: Receiver
) -> None:
    photo = make_photo(project=project)
    photo_enqueue(photo=photo)
    claim = photo_claim(photo_id=str(photo.pk))
    assert isinstance(claim, Claim)
    photo_store_failure(claim=claim, code="BAD_INPUT", message="Not a room.", retry_delay_ms=None)
    snapshot = inventory_sync(project_id=project.pk)
    assert snapshot is not None

    for delivery in WebhookDelivery.objects.order_by("created_at"):
        assert _deliver(delivery).delivered
    error, inventory = (json.loads(request.body) for request in receiver.requests)
    assert error["type"] == "photo.error"
    assert error["data"]["photo"]["errorCode"] == "BAD_INPUT"
    assert inventory["type"] == "inventory.updated"
    assert inventory["data"] == api.get(f"/api/projects/{project.pk}/inventory").json()


def test_only_subscribed_enabled_endpoints_of_the_owner_get_the_event(
    user: Any, receiver: Receiver, local_webhooks: None, project: Any
) -> None:
    endpoint_create(owner=user, url=receiver.url, events=["inventory.updated"])
    off = endpoint_create(owner=user, url=receiver.url)
    WebhookEndpoint.objects.filter(pk=off.pk).update(enabled=False)
    endpoint_create(owner=make_photo().project.owner, url=receiver.url)

    _analyze(make_photo(project=project))

    assert not WebhookDelivery.objects.exists()


def test_a_failing_receiver_is_retried_with_the_same_webhook_id_until_it_recovers(
    endpoint: WebhookEndpoint,
    project: Any,
    receiver: Receiver,
    settings: Any,
    webhook_queue: Queue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.WEBHOOK_RETRY_SCHEDULE = [30.0, 60.0]
    receiver.answer(Reply(500, body=b"down " * 300), Reply(502), Reply(204, body=b""))
    _analyze(make_photo(project=project))
    delivery = WebhookDelivery.objects.get()
    flush_namespace(webhook_queue.client)

    with django_capture_on_commit_callbacks(execute=True):
        first = _deliver(delivery)
    assert first is not None and not first.delivered and first.status_code == 500
    (retry,) = webhook_queue.delayed()  # the retry's delayed message
    assert retry["args"] == [str(delivery.pk)]
    assert 27 <= (first.next_attempt_at - timezone.now()).total_seconds() <= 33  # 30 s ± 10 %
    assert _deliver(delivery) is None  # not due yet
    _due_now(delivery)
    assert not _deliver(delivery).delivered
    _due_now(delivery)
    assert _deliver(delivery).delivered

    ids = {request.headers["webhook-id"] for request in receiver.requests}
    assert ids == {delivery.webhook_id} and len(receiver.requests) == 3
    for request in receiver.requests:
        Webhook(endpoint.secret).verify(request.body, request.headers)
    log = list(WebhookAttempt.objects.order_by("number"))
    assert [(a.number, a.status_code) for a in log] == [(1, 500), (2, 502), (3, 204)]
    assert len(log[0].response_excerpt) == 500  # capped
    assert log[0].next_retry_at is not None and log[2].next_retry_at is None
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None  # the success ended the streak


def test_the_receiver_checks_each_signature_and_can_answer_by_rule(
    endpoint: WebhookEndpoint, project: Any, receiver: Receiver, settings: Any
) -> None:
    """tests/webhook_receiver.py as the fault suite and the bench use it: an answer decided from
    the request and those before it (503 to a webhook-id's first attempt), each signature checked
    against the receiver's secret."""
    settings.WEBHOOK_RETRY_SCHEDULE = [30.0]
    receiver.secret = endpoint.secret
    receiver.decide = lambda request, earlier: Reply(
        200 if any(hook.webhook_id == request.webhook_id for hook in earlier) else 503
    )
    _analyze(make_photo(project=project))
    delivery = WebhookDelivery.objects.get()

    assert not _deliver(delivery).delivered
    _due_now(delivery)
    assert _deliver(delivery).delivered
    receiver.secret = webhook_secret_new()  # not the endpoint's
    assert webhook_resend(delivery_ids=[delivery.pk]) == 1
    assert _deliver(delivery).delivered

    got = [(hook.status, hook.verified, hook.webhook_id) for hook in receiver.snapshot()]
    webhook_id = delivery.webhook_id
    assert got == [(503, True, webhook_id), (200, True, webhook_id), (200, False, webhook_id)]


def test_retry_after_on_429_and_503_wins_over_the_schedule(
    endpoint: WebhookEndpoint, project: Any, receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_RETRY_SCHEDULE = [600.0, 600.0]
    receiver.answer(
        Reply(429, headers={"Retry-After": "2"}), Reply(503, headers={"Retry-After": "1"})
    )
    _analyze(make_photo(project=project))
    delivery = WebhookDelivery.objects.get()

    first = _deliver(delivery)
    assert 1.5 <= (first.next_attempt_at - timezone.now()).total_seconds() <= 2.1
    assert _deliver(delivery) is None  # not due before the Retry-After
    time.sleep(2.1)
    second = _deliver(delivery)
    assert second.status_code == 503
    assert 0.5 <= (second.next_attempt_at - timezone.now()).total_seconds() <= 1.1


def test_a_delivery_is_given_up_when_the_schedule_is_spent(
    endpoint: WebhookEndpoint, project: Any, receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_RETRY_SCHEDULE = [1.0]
    receiver.answer(Reply(500))
    _analyze(make_photo(project=project))
    delivery = WebhookDelivery.objects.get()

    assert _deliver(delivery).next_attempt_at is not None
    _due_now(delivery)
    assert _deliver(delivery).next_attempt_at is None

    delivery.refresh_from_db()
    assert delivery.status == Status.FAILED and delivery.attempts == 2
    assert delivery.last_error == "HTTP 500"


def test_an_address_no_longer_allowed_is_refused_at_send_time(
    endpoint: WebhookEndpoint, project: Any, receiver: Receiver, settings: Any
) -> None:
    # Registered while loopback was allowed; the name resolves to 127.0.0.1 at send time.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        url=receiver.url.replace("127.0.0.1", "localhost")
    )
    _analyze(make_photo(project=project))
    settings.WEBHOOK_ALLOWED_NETWORKS = []

    outcome = _deliver(WebhookDelivery.objects.get())

    assert outcome is not None and not outcome.delivered and outcome.status_code is None
    assert receiver.requests == []
    attempt = WebhookAttempt.objects.get()
    assert (
        attempt.error.startswith("refused: ") and "127.0.0.1 is a loopback address" in attempt.error
    )


def test_a_slow_receiver_is_cut_at_the_timeout_and_redirects_are_not_followed(
    endpoint: WebhookEndpoint, project: Any, receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_TIMEOUT_S = 0.5
    receiver.answer(Reply(200, delay_s=3), Reply(302, headers={"Location": "http://127.0.0.1:9/"}))
    _analyze(make_photo(project=project))
    delivery = WebhookDelivery.objects.get()

    started = time.monotonic()
    slow = _deliver(delivery)
    assert time.monotonic() - started < 2
    assert not slow.delivered and WebhookAttempt.objects.get().error == "timed out"
    _due_now(delivery)
    redirected = _deliver(delivery)
    assert redirected.status_code == 302 and not redirected.delivered
    assert len(receiver.requests) == 2


def test_the_relay_resends_owed_deliveries_that_redis_lost(
    endpoint: WebhookEndpoint,
    project: Any,
    receiver: Receiver,
    webhook_queue: Queue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _analyze(make_photo(project=project))
    delivery = WebhookDelivery.objects.get()
    flush_namespace(webhook_queue.client)  # Redis restarted empty
    grace = timedelta(seconds=0)

    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks_relay(client=webhook_queue.client, grace=grace) == 1
    (message,) = webhook_queue.all()
    assert message["args"] == [str(delivery.pk)]
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks_relay(client=webhook_queue.client, grace=grace) == 0  # it is live now
    # A worker killed mid-attempt: its lease expires, and the relay sends the delivery again.
    flush_namespace(webhook_queue.client)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        lease_expires_at=timezone.now() + timedelta(minutes=1)
    )
    assert webhooks_relay(client=webhook_queue.client, grace=grace) == 0  # still held
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert webhooks_relay(client=webhook_queue.client, grace=grace) == 1
    assert _deliver(delivery).delivered
    assert receiver.requests[0].headers["webhook-id"] == delivery.webhook_id


def test_an_endpoint_failing_for_five_days_is_disabled_and_re_enabling_resumes(
    endpoint: WebhookEndpoint,
    project: Any,
    api: APIClient,
    receiver: Receiver,
    webhook_queue: Queue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver.answer(Reply(500))
    _analyze(make_photo(project=project))
    delivery = WebhookDelivery.objects.get()
    assert not _deliver(delivery).delivered
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is not None
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - timedelta(days=5, minutes=1)
    )
    _due_now(delivery)

    assert not _deliver(delivery).delivered

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert "no delivery succeeded for 5 days" in endpoint.disabled_reason
    shown = api.get(f"/api/webhooks/{endpoint.pk}").json()
    assert shown["enabled"] is False and shown["disabledReason"] == endpoint.disabled_reason
    _due_now(delivery)
    assert _deliver(delivery) is None  # nothing goes to a disabled endpoint
    receiver.answer(Reply(200))
    flush_namespace(webhook_queue.client)

    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"/api/webhooks/{endpoint.pk}", {"enabled": True}, format="json")

    (message,) = webhook_queue.all()
    assert message["args"] == [str(delivery.pk)]
    assert _deliver(delivery).delivered
