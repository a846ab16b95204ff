"""End to end: two real `rundramatiq` processes share AI_QUOTAS through Redis while calling the
Anthropic API (the fake, over HTTP): the provider sees no more than the limit, no attempt is
burnt on waiting, and a small project is not stuck behind a big one's backlog."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from photos.lifecycle import photo_enqueue
from photos.models import Photo, Project
from tests.factories import make_photo, make_project
from tests.fakeai import SONNET, FakeAiServer, running_fake_ai
from tests.processes import Worker, poll

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake_ai() -> Iterator[FakeAiServer]:
    with running_fake_ai(latency_ms=150) as server:
        yield server


def _workers(
    start_worker: Callable[..., Worker], fake_ai: FakeAiServer, rpm: int, count: int = 2
) -> list[Worker]:
    return [
        start_worker(
            threads=4,
            AI_PROVIDERS="anthropic",
            ANTHROPIC_API_KEY="sk-ant-quota-e2e-123456",
            ANTHROPIC_BASE_URL=fake_ai.url,
            ANTHROPIC_MODEL=SONNET,
            AI_QUOTAS=json.dumps({"anthropic": {"rpm": rpm, "concurrency": 6}}),
            AI_QUOTA_BURST_S="1",  # a bucket of one second: the limit shows within seconds
        )
        for _ in range(count)
    ]


def _enqueue(project: Project, count: int) -> list[Photo]:
    photos = [make_photo(project=project) for _ in range(count)]
    for photo in photos:
        photo_enqueue(photo=photo)
    return photos


def _all_finished(worker: Worker, photos: list[Photo], timeout: float = 60) -> list[Photo]:
    ids = [photo.pk for photo in photos]

    def finished() -> list[Photo] | None:
        rows = list(Photo.objects.filter(pk__in=ids))
        done = all(row.status in {Photo.Status.DONE, Photo.Status.ERROR} for row in rows)
        return rows if done else None

    return poll(worker, "the photos to finish", finished, timeout=timeout)


def test_workers_share_the_providers_requests_per_minute(
    start_worker: Callable[..., Worker], fake_ai: FakeAiServer
) -> None:
    workers = _workers(start_worker, fake_ai, rpm=120)  # two a second, two at once at most
    photos = _enqueue(make_project(), 12)

    rows = _all_finished(workers[0], photos)

    # Every photo DONE at its first attempt: waiting for a slot spent none.
    assert sorted((row.status, row.attempts) for row in rows) == [("DONE", 1)] * 12
    times = sorted(request.received_at for request in fake_ai.requests_for("anthropic"))
    assert len(times) == 12  # one call each, nothing rejected or repeated
    # 120 a minute with a one-second bucket: at most 2 + 2 × t calls in any t seconds.
    for index, start in enumerate(times):
        for window in (1.0, 2.0, 4.0):
            calls = sum(1 for t in times[index:] if t < start + window)
            assert calls <= 2 + 2 * window + 1, (window, times)
    assert times[-1] - times[0] >= (12 - 2) / 2 - 0.5, times


def test_a_small_project_starts_within_seconds_behind_a_big_backlog(
    start_worker: Callable[..., Worker], fake_ai: FakeAiServer
) -> None:
    workers = _workers(start_worker, fake_ai, rpm=240)  # four a second
    big = _enqueue(make_project(name="Agency"), 32)  # ~8 s of calls at the limit
    poll(
        workers[0],
        "the big project to start",
        lambda: Photo.objects.filter(status=Photo.Status.DONE).exists() or None,
    )
    small_queued = time.time()
    small = _enqueue(make_project(name="Household"), 3)

    small_rows = _all_finished(workers[0], small)
    big_rows = _all_finished(workers[0], big)

    assert all(row.status == "DONE" and row.attempts == 1 for row in small_rows + big_rows)
    small_done = max(row.processed_at for row in small_rows if row.processed_at)
    big_done = max(row.processed_at for row in big_rows if row.processed_at)
    # Round-robin with the big project: the small one's three calls take a few seconds, not
    # the ~7 s of backlog ahead of them in the queue.
    assert small_done.timestamp() - small_queued <= 4.0, small_done.timestamp() - small_queued
    assert big_done - small_done >= timedelta(seconds=2), (big_done, small_done)
