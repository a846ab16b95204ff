"""End to end: the HTTP API on a live server and a real `rundramatiq` worker process.

Only HTTP from the client side; the database is read directly only for what the API does not
show (AI metrics). The worker shares the test database and this process's Redis namespace.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from ai_engine.types import ROOM_TYPES
from aimetrics.models import AiMetric
from tests.factories import image_bytes, make_token, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPO_ROOT = Path(__file__).resolve().parent.parent
POLL_TIMEOUT_S = 30.0
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


class Worker:
    """A `manage.py rundramatiq` process; everything it prints goes to `log_path`."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no worker log)"
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            pytest.fail(f"worker exited with {code}; log:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (threads finish their message), then SIGKILL the group if it hangs."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The worker is the leader of its own session: this kills it and its children only.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def _database_url() -> str:
    """The URL of the database this test uses (the test database, not the configured one)."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or 5432
    return f"postgres://{credentials}@{host}:{port}/{db['NAME']}"


@pytest.fixture
def start_worker(
    transactional_db: Any, live_server: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Worker]]:
    """Starts workers with extra environment variables; stops them before the database flush.

    Depending on `transactional_db` makes this fixture's teardown run before the flush, so no
    worker connection holds a lock the flush waits for (or outlives the test database).
    """
    workers: list[Worker] = []
    failures_before = request.session.testsfailed

    def start(**extra_env: str) -> Worker:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "moverz.settings",
            "DATABASE_URL": _database_url(),
            "DRAMATIQ_NAMESPACE": settings.DRAMATIQ_NAMESPACE,
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        log_path = tmp_path / f"worker-{len(workers)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "rundramatiq",
                    "--processes",
                    "1",
                    "--threads",
                    "4",
                ],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(process, log_path)
        workers.append(worker)
        return worker

    yield start

    for worker in workers:
        worker.stop()
    if request.session.testsfailed > failures_before:
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            for worker in workers:
                print(f"\n--- tail of {worker.log_path} ---\n{worker.log_tail()}\n---")


class Api:
    """A token-authenticated JSON client over urllib."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Token {self.token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(
            self.base_url + path, data=body, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            payload = error.read()
            return error.code, json.loads(payload) if payload else None

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def post_json(self, path: str, data: dict[str, Any]) -> tuple[int, Any]:
        return self.request("POST", path, json.dumps(data).encode(), "application/json")

    def post_multipart(
        self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]
    ) -> tuple[int, Any]:
        boundary = f"----moverz-{uuid.uuid4().hex}"
        parts: list[bytes] = []
        for name, value in fields.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        for name, (filename, content, mime) in files.items():
            parts.append(
                f"--{boundary}\r\nContent-Disposition: form-data; name="
                f'"{name}"; filename="{filename}"\r\nContent-Type: {mime}\r\n\r\n'.encode()
                + content
                + b"\r\n"
            )
        parts.append(f"--{boundary}--\r\n".encode())
        return self.request(
            "POST", path, b"".join(parts), f"multipart/form-data; boundary={boundary}"
        )


@pytest.fixture
def client_api(live_server: Any) -> Api:
    user = make_user()
    return Api(live_server.url, make_token(user))


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


def _poll[T](
    worker: Worker, what: str, probe: Callable[[], T | None], timeout: float = POLL_TIMEOUT_S
) -> T:
    """Call `probe` until it returns something; fail early if the worker dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.check_alive()
        result = probe()
        if result is not None:
            return result
        time.sleep(0.05)
    pytest.fail(
        f"timed out after {timeout:.0f} s waiting for {what}; worker log:\n{worker.log_tail()}"
    )


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
        _poll(worker, f"photo {pid} DONE", _photo_when(client_api, pid, {"DONE", "ERROR"}))
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

    inventory = _poll(worker, "an inventory of 3 photos", inventory_complete)

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
    # Every provider call was measured: one per photo with a room type, two without.
    assert AiMetric.objects.filter(success=True).count() == 5
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

    photo = _poll(worker, "photo ERROR", _photo_when(client_api, photo_id, {"DONE", "ERROR"}))

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
