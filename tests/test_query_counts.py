"""Guard rails of the benchmarks (docs/benchmarks.md): the exact number of SQL statements on each
hot path. Timings are not asserted (they depend on the machine); query counts are deterministic,
so a change that adds a query to a hot path fails here and says which one.

Each count is what Django sends on the default connection (pytest-django's
`django_assert_num_queries`). Tests run inside a transaction, so a service's own
`transaction.atomic()` shows up here as SAVEPOINT / RELEASE SAVEPOINT (in production, where the
service runs in autocommit, it is BEGIN / COMMIT: the same number of round trips).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from ai_engine.fake import FakeProvider
from inventory.services import inventory_sync
from photos.lifecycle import photo_enqueue
from photos.models import Photo
from photos.services.analysis import Outcome, photo_analyze
from photos.volumes import volume_catalogue
from tests.factories import image_bytes, make_photo, make_project

pytestmark = pytest.mark.django_db


def _done_photo(project: Any, *, items: int = 3) -> Photo:
    photo = make_photo(project=project, room_type="kitchen")
    Photo.objects.filter(pk=photo.pk).update(
        status=Photo.Status.DONE, items_count=items, volume_m3="1.50"
    )
    return photo


def test_enqueue_api_moves_the_photo_with_one_update(
    api: APIClient,
    user: Any,
    django_assert_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = make_photo(project=make_project(owner=user))

    # DRF's token authentication (one SELECT), then one conditional UPDATE whose WHERE checks
    # the owner and the state (photos/lifecycle.py).
    with django_capture_on_commit_callbacks(execute=True), django_assert_num_queries(2):
        response = api.post("/api/photos/enqueue", {"photoId": str(photo.pk)}, format="json")

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "enqueued"


def test_enqueue_api_of_a_queued_photo_adds_one_read(
    api: APIClient,
    user: Any,
    django_assert_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = make_photo(project=make_project(owner=user))
    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=photo)

    # The token, the UPDATE that finds nothing to move, the read that says why.
    with django_assert_num_queries(3):
        response = api.post("/api/photos/enqueue", {"photoId": str(photo.pk)}, format="json")

    assert response.json()["status"] == "already_queued"


def test_enqueue_api_of_someone_elses_photo_costs_the_same_and_is_404(
    api: APIClient, django_assert_num_queries: Any
) -> None:
    photo = make_photo()  # another user's

    # The token, then the UPDATE and the read find nothing: 404.
    with django_assert_num_queries(3):
        response = api.post("/api/photos/enqueue", {"photoId": str(photo.pk)}, format="json")

    assert response.status_code == 404
    assert Photo.objects.get(pk=photo.pk).queued_at is None


def test_poll_api_reads_the_token_then_the_photo(
    api: APIClient, user: Any, django_assert_num_queries: Any
) -> None:
    photo = _done_photo(make_project(owner=user))

    # DRF's token authentication, then the photo with the owner check in its WHERE.
    with django_assert_num_queries(2):
        response = api.get(f"/api/photos/{photo.pk}")

    assert response.status_code == 200
    assert response.json()["photo"]["status"] == "DONE"


@pytest.mark.parametrize(("enqueue", "queries"), [(False, 5), (True, 6)])
def test_upload_api(
    api: APIClient,
    user: Any,
    django_assert_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
    enqueue: bool,
    queries: int,
) -> None:
    project = make_project(owner=user)
    image = SimpleUploadedFile("room.jpg", image_bytes(seed=3), content_type="image/jpeg")
    body = {"image": image, "projectId": str(project.pk), "enqueue": enqueue}

    # The token, the project, then SAVEPOINT, the INSERT (and the enqueue's UPDATE), RELEASE.
    with (
        django_capture_on_commit_callbacks(execute=True),
        django_assert_num_queries(queries),
    ):
        response = api.post("/api/photos", body, format="multipart")

    assert response.status_code == 201, response.content


def test_photo_analyze_with_the_fake_provider(
    django_assert_num_queries: Any, django_capture_on_commit_callbacks: Any
) -> None:
    photo = make_photo()  # no room type: one provider call answers the room and the items
    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=photo)
    volume_catalogue().keys()  # the catalogue is read once a minute per process: warm it

    # The claim (SAVEPOINT, the conditional UPDATE, the DELETE of the item rows a DONE photo
    # had, RELEASE, then one SELECT of the photo, its project, and whether answers of this run
    # are on record and whether an identical image is DONE in the project: none, so no read of
    # either), the stage moves to analysing and, once answered, to saving (one UPDATE each), for
    # the one provider call the answer's INSERT and the AiMetric INSERT, then SAVEPOINT, the
    # DONE UPDATE, the photo's room label read again, its item rows (photos/items.py: the DELETE
    # of any earlier ones, one INSERT of its lines), the owner's webhook endpoints (none: no
    # outbox row, no read of the photo), RELEASE, and after the commit the project's inventory
    # request (one UPDATE). The catalogue's volumes (and the keys that make the item rows'
    # lines) come from its per-minute copy.
    with (
        django_assert_num_queries(17),
        django_capture_on_commit_callbacks(execute=True),
    ):
        outcome = photo_analyze(photo_id=str(photo.pk), provider=FakeProvider())

    assert outcome == Outcome.DONE


def test_inventory_sync_is_two_group_bys(django_assert_num_queries: Any) -> None:
    project = make_project()
    for _ in range(3):
        _done_photo(project)

    # Clear the request; the volume catalogue; the item lines' GROUP BY over their rows; the
    # staff corrections (none); the rooms' GROUP BY over the DONE photos; then SAVEPOINT, the
    # snapshot's INSERT, the owner's webhook endpoints (none: no outbox row), RELEASE.
    with django_assert_num_queries(9):
        snapshot = inventory_sync(project_id=project.pk)

    assert snapshot is not None and snapshot.photo_count == 3
