"""End to end: the HTTP API on a live server and a real `rundramatiq` worker process.

Only HTTP from the client side; the database is read directly only for what the API does not
show (AI metrics). The worker shares the test database and this process's Redis namespace.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from ai_engine.types import ROOM_TYPES
from aimetrics.models import AiMetric
from operations.workers import worker_heartbeats
from tests.factories import image_bytes
from tests.processes import Api, Worker, poll

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ITEM_KEYS = {
    "key",
    "name",
    "category",
    "quantity",
    "volumeSource",
    "volume_m3",
    "confidence",
    "fragile",
    "dismantle",
}


def _create_project(api: Api) -> str:
    status, body = api.post_json("/api/projects", {"name": "E2E move"})
    assert status == 201, body
    return str(body["id"])


def _upload(api: Api, project_id: str, *, seed: int, room_type: str | None = None) -> str:
    fields = {"projectId": project_id, "enqueue": "true"}
    if room_type:
        fields["roomType"] = room_type
    status, body = api.post_multipart(
        "/api/photos",
        fields,
        {"image": (f"room-{seed}.jpg", image_bytes(seed=seed), "image/jpeg")},
    )
    assert status == 201, body
    assert body["photo"]["status"] == "PENDING"
    assert body["jobId"] == f"photo-{body['photo']['id']}"
    return str(body["photo"]["id"])


def _photo_when(api: Api, photo_id: str, statuses: set[str]) -> Callable[[], Any]:
    def probe() -> Any:
        status, body = api.get(f"/api/photos/{photo_id}")
        assert status == 200, body
        return body["photo"] if body["photo"]["status"] in statuses else None

    return probe


def _check_analysis(photo: dict[str, Any]) -> None:
    analysis = photo["analysis"]
    contract = {"items", "totals", "confidence", "provider", "model", "promptVersion"}
    assert set(analysis) - {"roomConfidence"} == contract
    assert (analysis["provider"], analysis["model"]) == ("fake", "fake-vision-1")
    assert 0 < analysis["confidence"] <= 1
    items = analysis["items"]
    assert items
    for item in items:
        assert set(item) == ITEM_KEYS
        assert item["quantity"] >= 1 and item["volume_m3"] > 0
        assert isinstance(item["fragile"], bool) and isinstance(item["dismantle"], bool)
    assert analysis["totals"]["items"] == sum(item["quantity"] for item in items)
    assert analysis["totals"]["volume_m3"] == pytest.approx(
        sum(item["volume_m3"] for item in items), abs=0.005
    )


def test_upload_analyse_and_build_the_inventory(
    start_worker: Callable[..., Worker], client_api: Api
) -> None:
    started = time.monotonic()
    worker = start_worker()
    project_id = _create_project(client_api)
    photo_ids = [
        _upload(client_api, project_id, seed=11, room_type="kitchen"),
        _upload(client_api, project_id, seed=12),
        _upload(client_api, project_id, seed=13),
    ]

    # The first poll also waits for the worker to start: no fixed sleep.
    photos = [
        poll(worker, f"photo {pid} DONE", _photo_when(client_api, pid, {"DONE", "ERROR"}))
        for pid in photo_ids
    ]

    for photo in photos:
        assert (photo["status"], photo["errorCode"], photo["attempts"]) == ("DONE", None, 1)
        assert photo["processedAt"] is not None
        assert photo["projectId"] == project_id
        _check_analysis(photo)
    assert photos[0]["roomType"] == "kitchen"
    assert all(photo["roomType"] in ROOM_TYPES for photo in photos)
    expected_items = sum(photo["analysis"]["totals"]["items"] for photo in photos)
    expected_volume = round(sum(photo["analysis"]["totals"]["volume_m3"] for photo in photos), 2)

    def inventory_complete() -> Any:
        status, body = client_api.get(f"/api/projects/{project_id}/inventory")
        assert status in {200, 404}, body
        return body if status == 200 and body["photoCount"] == 3 else None

    inventory = poll(worker, "an inventory of 3 photos", inventory_complete)

    assert inventory["projectId"] == project_id
    assert inventory["totalItems"] == expected_items
    assert inventory["totalVolume"] == expected_volume
    rooms = inventory["rooms"]
    assert sorted(photo_id for room in rooms for photo_id in room["photos"]) == sorted(photo_ids)
    assert sum(room["itemsCount"] for room in rooms) == expected_items
    by_room: dict[str, int] = {}
    for photo in photos:
        by_room[photo["roomType"]] = (
            by_room.get(photo["roomType"], 0) + photo["analysis"]["totals"]["items"]
        )
    assert {room["roomType"]: room["itemsCount"] for room in rooms} == by_room
    status, counts = client_api.get(f"/api/projects/{project_id}")
    assert status == 200
    assert counts["photoCounts"] == {"PENDING": 0, "PROCESSING": 0, "DONE": 3, "ERROR": 0}
    # Every provider call was measured: one per photo, with or without a room type.
    assert AiMetric.objects.filter(success=True).count() == 3
    # The queues page tells the worker's process from the processes that only send (this one).
    consumers = [beat for beat in worker_heartbeats() if beat.is_worker]
    assert [(beat.host, beat.threads, beat.alive) for beat in consumers] == [
        (socket.gethostname(), 4, True)
    ]
    worker.stop()
    assert not [beat for beat in worker_heartbeats() if beat.is_worker]
    print(f"e2e happy path took {time.monotonic() - started:.1f} s")


def test_provider_timeouts_end_in_error_after_max_attempts(
    start_worker: Callable[..., Worker], client_api: Api
) -> None:
    started = time.monotonic()
    worker = start_worker(
        AI_FAKE_FAIL_RATE="1",
        AI_FAKE_FAIL_CODE="TIMEOUT",
        PHOTO_MAX_ATTEMPTS="2",
        PHOTO_RETRY_BASE_MS="50",
    )
    project_id = _create_project(client_api)
    photo_id = _upload(client_api, project_id, seed=21, room_type="bedroom")

    photo = poll(worker, "photo ERROR", _photo_when(client_api, photo_id, {"DONE", "ERROR"}))

    assert (photo["status"], photo["errorCode"], photo["attempts"]) == ("ERROR", "TIMEOUT", 2)
    assert photo["errorMessage"] == "fake provider: injected TIMEOUT failure"
    assert photo["analysis"] is None
    metrics = list(
        AiMetric.objects.filter(photo_id=photo_id)
        .order_by("created_at")
        .values_list("operation", "success", "error_type", "retries")
    )
    assert metrics == [
        ("analyze_photo", False, "TIMEOUT", 0),
        ("analyze_photo", False, "TIMEOUT", 1),
    ]
    # Nothing was DONE, so no inventory was asked for.
    status, _ = client_api.get(f"/api/projects/{project_id}/inventory")
    assert status == 404
    print(f"e2e failure path took {time.monotonic() - started:.1f} s")
