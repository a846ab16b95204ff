"""Cheap polling and progress: `GET /api/photos/{id}` says how far the analysis is (`stage`,
`progress`), sends an ETag (304 for `If-None-Match` while nothing changed) and, while the photo
is not finished, when to look again (`Retry-After`, from the queue's pace)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from rest_framework.test import APIClient

from ai_engine.fake import FakeProvider
from ai_engine.types import PhotoAnalysis, RoomGuess
from aimetrics.services import aimetric_record
from photos.lifecycle import photo_enqueue
from photos.models import Photo
from photos.services.analysis import Outcome, photo_analyze
from photos.tasks import analyze_photo
from tests.factories import make_photo, make_project, make_token, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_pace(settings: Any) -> None:
    settings.POLL_PACE_TTL_S = 0  # every poll reads the pace: each test sets its own


@pytest.fixture
def owner() -> Any:
    return make_user()


@pytest.fixture
def client(owner: Any) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {make_token(owner)}")
    return api


class StageWatcher:
    """A provider that, when asked, reads the photo as a client would see it."""

    name = "fake"
    model = "fake-vision-1"

    def __init__(self, client: APIClient, photo_id: str) -> None:
        self.client, self.photo_id = client, photo_id
        self.seen: list[tuple[str, str, int]] = []

    def detect_room(self, image: bytes, *, max_tokens: int | None = None) -> RoomGuess:
        raise AssertionError("one call per photo")

    def analyze_photo(
        self,
        image: bytes,
        room_type: str | None,
        catalogue_keys: Sequence[str] = (),
        *,
        max_tokens: int | None = None,
    ) -> PhotoAnalysis:
        photo = self.client.get(f"/api/photos/{self.photo_id}").json()["photo"]
        self.seen.append((photo["status"], photo["stage"], photo["progress"]))
        return FakeProvider().analyze_photo(image, room_type, catalogue_keys)


def _poll(client: APIClient, photo: Photo, **headers: str) -> Any:
    return client.get(f"/api/photos/{photo.pk}", headers=headers)


def test_stage_and_progress_follow_the_worker(
    client: APIClient, owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    photo = make_photo(project=make_project(owner=owner))
    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=photo)
    queued = _poll(client, photo).json()["photo"]
    assert (queued["status"], queued["stage"], queued["progress"]) == ("PENDING", "queued", 0)

    watcher = StageWatcher(client, str(photo.pk))
    with django_capture_on_commit_callbacks(execute=True):
        assert photo_analyze(photo_id=str(photo.pk), provider=watcher) == Outcome.DONE

    assert watcher.seen == [("PROCESSING", "analysing", 50)]
    done = _poll(client, photo).json()["photo"]
    assert (done["status"], done["stage"], done["progress"]) == ("DONE", "done", 100)


def _with_status(photo: Photo, status: str) -> Photo:
    Photo.objects.filter(pk=photo.pk).update(status=status)
    photo.refresh_from_db()
    return photo


def test_an_error_is_finished_too(client: APIClient, owner: Any) -> None:
    photo = _with_status(make_photo(project=make_project(owner=owner)), Photo.Status.ERROR)

    response = _poll(client, photo)

    body = response.json()["photo"]
    assert (body["stage"], body["progress"]) == ("error", 100)
    assert "Retry-After" not in response


def test_a_poll_with_the_etag_it_got_is_304_with_no_body_until_the_photo_changes(
    client: APIClient, owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    photo = make_photo(project=make_project(owner=owner), enqueue=True)
    first = _poll(client, photo)
    etag = first["ETag"]
    assert first.status_code == 200 and etag.startswith('"') and etag.endswith('"')

    again = _poll(client, photo, If_None_Match=etag)
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == etag and "Retry-After" in again
    assert _poll(client, photo, If_None_Match='"other", ' + etag).status_code == 304
    assert _poll(client, photo, If_None_Match='"stale"').status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        photo_analyze(photo_id=str(photo.pk), provider=FakeProvider())
    changed = _poll(client, photo, If_None_Match=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert changed.json()["photo"]["status"] == "DONE"
    assert "Retry-After" not in changed  # finished: nothing to wait for


def test_a_photo_never_enqueued_has_no_retry_after(client: APIClient, owner: Any) -> None:
    photo = make_photo(project=make_project(owner=owner))  # uploaded without enqueue

    response = _poll(client, photo)

    assert response.json()["photo"]["status"] == "PENDING"
    assert "Retry-After" not in response


def test_another_users_photo_is_404_whatever_the_etag(client: APIClient) -> None:
    photo = make_photo()

    assert _poll(client, photo, If_None_Match="*").status_code == 404


def test_retry_after_of_a_processing_photo_is_the_providers_recent_pace(
    client: APIClient, owner: Any, redis_client: Any
) -> None:
    for latency_ms in (3_200, 3_900, 4_100):
        aimetric_record(
            provider="fake", model="m", operation="analyze_photo", latency_ms=latency_ms,
            success=True,
        )  # fmt: skip
    photo = _with_status(make_photo(project=make_project(owner=owner)), Photo.Status.PROCESSING)

    assert _poll(client, photo)["Retry-After"] == "4"  # the median call, 3.9 s, rounded up


def test_retry_after_of_a_waiting_photo_counts_the_queue_ahead_and_is_capped(
    client: APIClient, owner: Any, redis_client: Any
) -> None:
    """No analysis finished in the last minute and a queue ahead: the cap (30 s), never more."""
    project = make_project(owner=owner)
    photos = [make_photo(project=project, enqueue=True) for _ in range(3)]
    for photo in photos:  # three messages wait in Redis
        analyze_photo.send(str(photo.pk))

    assert _poll(client, photos[-1])["Retry-After"] == "30"
