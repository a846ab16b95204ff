"""End to end: an endpoint registered over HTTP, a photo analysed by a real `rundramatiq`
worker, and its signed `photo.done` delivered to a local receiver, through one failure."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.factories import image_bytes
from tests.processes import Api, Worker, poll
from tests.webhook_receiver import Receiver, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_worker_delivers_photo_done_and_inventory_updated_retrying_a_failure(
    start_worker: Callable[..., Worker],
    client_api: Api,
    receiver: Receiver,
    local_webhooks: None,
) -> None:
    worker = start_worker(
        WEBHOOK_ALLOW_HTTP="1",
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        WEBHOOK_RETRY_SCHEDULE="1",
    )
    receiver.answer(Reply(500), Reply(200))
    status, endpoint = client_api.post_json(
        "/api/webhooks", {"url": receiver.url, "events": ["photo.done", "inventory.updated"]}
    )
    assert status == 201, endpoint
    status, project = client_api.post_json("/api/projects", {"name": "Hooked move"})
    assert status == 201
    status, body = client_api.post_multipart(
        "/api/photos",
        {"projectId": project["id"], "enqueue": "true"},
        {"image": ("room.jpg", image_bytes(seed=5), "image/jpeg")},
    )
    assert status == 201, body
    photo_id = body["photo"]["id"]

    def events_of(kind: str) -> Callable[[], Any]:
        def probe() -> Any:
            got = [r for r in receiver.requests if json.loads(r.body)["type"] == kind]
            return got if len(got) >= (2 if kind == "photo.done" else 1) else None

        return probe

    done = poll(worker, "photo.done delivered twice", events_of("photo.done"), timeout=60)
    first, second = done[:2]
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert second.at - first.at >= 0.8  # the schedule's 1 s (±10 %)
    payload = Webhook(endpoint["secret"]).verify(second.body, second.headers)
    _, polled = client_api.get(f"/api/photos/{photo_id}")
    assert payload["data"] == polled
    (inventory,) = poll(worker, "inventory.updated", events_of("inventory.updated"), timeout=60)
    assert (
        Webhook(endpoint["secret"]).verify(inventory.body, inventory.headers)["data"]["projectId"]
        == project["id"]
    )
    time.sleep(0.5)
    assert len([r for r in receiver.requests if b'"photo.done"' in r.body]) == 2
