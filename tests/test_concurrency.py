"""Concurrency claims driven for real: threads with their own database connections, real Redis.

These tests commit (transaction=True), so `on_commit` callbacks run as they do in production.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from ai_engine.fake import FakeProvider
from aimetrics.models import AiMetric
from photos.lifecycle import EnqueueStatus, photo_enqueue
from photos.models import Photo
from photos.services.analysis import Outcome, photo_analyze
from tests.factories import make_photo, make_project, make_token

pytestmark = pytest.mark.django_db(transaction=True)


def _all_at_once[T](count: int, work: Callable[[], T]) -> list[T]:
    """Run `work` in `count` threads released together; each thread closes its connection."""
    barrier = threading.Barrier(count)

    def run() -> T:
        try:
            barrier.wait(timeout=30)
            return work()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(run) for _ in range(count)]
        return [future.result(timeout=60) for future in futures]


def _analyze_metrics(photo: Photo) -> int:
    return AiMetric.objects.filter(
        photo_id=photo.pk, operation="analyze_photo", success=True
    ).count()


def test_fifty_concurrent_enqueues_send_one_message_and_analyse_once(
    user: Any, photo_queue: Any
) -> None:
    photo = make_photo(project=make_project(owner=user), room_type="kitchen")
    token = make_token(user)

    def enqueue() -> tuple[int, str]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        response = client.post("/api/photos/enqueue", {"photoId": str(photo.pk)}, format="json")
        return response.status_code, response.json()["status"]

    results = _all_at_once(50, enqueue)

    assert Counter(code for code, _ in results) == {202: 50}
    statuses = Counter(status for _, status in results)
    assert statuses["enqueued"] == 1
    assert set(statuses) <= {"enqueued", "already_queued"}
    assert [message["args"] for message in photo_queue.all()] == [[str(photo.pk)]]

    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.SKIPPED
    assert _analyze_metrics(photo) == 1
    photo.refresh_from_db()
    assert (photo.status, photo.attempts) == (Photo.Status.DONE, 1)


def test_two_workers_with_the_same_message_never_both_analyse(photo_queue: Any) -> None:
    photo = make_photo(room_type="bedroom")
    assert photo_enqueue(photo=photo).status == EnqueueStatus.ENQUEUED
    assert len(photo_queue.ready()) == 1  # committed at once: on_commit ran for real

    def work() -> Outcome:
        return photo_analyze(photo_id=str(photo.pk), provider=FakeProvider(latency_ms=200))

    outcomes = sorted(_all_at_once(2, work))

    assert outcomes in (
        sorted([Outcome.DONE, Outcome.BUSY]),
        sorted([Outcome.DONE, Outcome.SKIPPED]),
    )
    assert _analyze_metrics(photo) == 1
    assert AiMetric.objects.filter(photo_id=photo.pk).count() == 1  # room given: no detect_room
    photo.refresh_from_db()
    assert (photo.status, photo.attempts) == (Photo.Status.DONE, 1)


def test_enqueue_sends_its_message_only_when_the_transaction_commits(photo_queue: Any) -> None:
    photo = make_photo()

    with transaction.atomic():
        assert photo_enqueue(photo=photo).status == EnqueueStatus.ENQUEUED
        assert photo_queue.all() == []

    assert [message["args"] for message in photo_queue.all()] == [[str(photo.pk)]]


def test_enqueue_in_a_rolled_back_transaction_sends_nothing(photo_queue: Any) -> None:
    photo = make_photo()

    with pytest.raises(RuntimeError, match="request failed"), transaction.atomic():
        photo_enqueue(photo=photo)
        raise RuntimeError("request failed")

    photo.refresh_from_db()
    assert photo.queued_at is None
    assert photo_queue.all() == []
    # Nothing is owed, so a later request really enqueues it.
    assert photo_enqueue(photo=photo).status == EnqueueStatus.ENQUEUED
    assert len(photo_queue.all()) == 1
