"""Rooms as the household has them: the `room` label of a photo, and the inventory's rooms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from ai_engine.fake import FakeProvider
from inventory.services import inventory_sync
from photos.lifecycle import photo_enqueue
from photos.models import Photo, Project
from photos.services.analysis import Outcome, photo_analyze
from tests.factories import image_bytes, make_photo, make_project

pytestmark = pytest.mark.django_db


def _analysed(capture: Any, project: Project, *, room_type: str, room: str = "") -> Photo:
    photo = make_photo(project=project, room_type=room_type, room=room)
    with capture(execute=True):
        photo_enqueue(photo=photo)
        assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
    photo.refresh_from_db()
    return photo


def _upload(api: APIClient, project: Project, **fields: Any) -> Any:
    image = SimpleUploadedFile("room.jpg", image_bytes(), content_type="image/jpeg")
    body = {"image": image, "projectId": str(project.pk), **fields}
    return api.post("/api/photos", body, format="multipart")


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path


def test_upload_stores_the_room_label_and_answers_it(api: APIClient, project: Project) -> None:
    response = _upload(api, project, room="  Chambre  2 ")

    assert response.status_code == 201
    assert response.json()["photo"]["room"] == "Chambre  2"
    photo = Photo.objects.get(pk=response.json()["photo"]["id"])
    assert (photo.room_label, photo.room_key) == ("Chambre  2", "chambre 2")
    polled = api.get(f"/api/photos/{photo.pk}").json()["photo"]
    assert polled["room"] == "Chambre  2"


def test_a_photo_without_a_label_answers_room_null(api: APIClient, project: Project) -> None:
    response = _upload(api, project)

    assert response.status_code == 201
    assert response.json()["photo"]["room"] is None


def test_a_room_label_too_long_is_400_and_stores_nothing(api: APIClient, project: Project) -> None:
    response = _upload(api, project, room="x" * 81)

    assert response.status_code == 400
    assert response.json()["error"] == "room: A room label has at most 80 characters."
    assert not Photo.objects.exists()
    assert _upload(api, project, room="x" * 80).status_code == 201


def test_enqueue_stores_the_room_label(api: APIClient, project: Project) -> None:
    photo = make_photo(project=project)

    too_long = api.post(
        "/api/photos/enqueue", {"photoId": str(photo.pk), "room": "y" * 81}, format="json"
    )
    queued = api.post(
        "/api/photos/enqueue", {"photoId": str(photo.pk), "room": "Salon"}, format="json"
    )

    assert too_long.status_code == 400
    assert too_long.json()["error"] == "room: A room label has at most 80 characters."
    assert queued.status_code == 202 and queued.json()["status"] == "enqueued"
    photo.refresh_from_db()
    assert (photo.room_label, photo.room_key) == ("Salon", "salon")
    # null, empty or absent: the label stays.
    for room in (None, ""):
        Photo.objects.filter(pk=photo.pk).update(queued_at=None)
        body = {"photoId": str(photo.pk), "room": room}
        assert api.post("/api/photos/enqueue", body, format="json").status_code == 202
        photo.refresh_from_db()
        assert photo.room_label == "Salon"


def test_enqueue_with_a_room_label_that_is_not_text_is_400(
    api: APIClient, project: Project
) -> None:
    photo = make_photo(project=project)

    response = api.post(
        "/api/photos/enqueue", {"photoId": str(photo.pk), "room": {"a": 1}}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith("room: ")


def test_photos_with_one_label_are_one_room_whatever_the_case_and_spaces(
    django_capture_on_commit_callbacks: Any,
) -> None:
    capture = django_capture_on_commit_callbacks
    project = make_project()
    chambre_2 = [
        _analysed(capture, project, room_type="bedroom", room="Chambre 2"),
        _analysed(capture, project, room_type="bedroom", room="  chambre   2"),
        _analysed(capture, project, room_type="office", room="CHAMBRE 2 "),
    ]
    chambre_3 = _analysed(capture, project, room_type="bedroom", room="Chambre 3")
    unlabelled = [_analysed(capture, project, room_type="bedroom") for _ in range(2)]
    _analysed(capture, make_project(), room_type="bedroom", room="Chambre 2")  # not ours

    snapshot = inventory_sync(project_id=project.pk)

    assert snapshot is not None
    rooms = snapshot.rooms
    assert [(room["room"] or "").casefold() for room in rooms] == [
        "chambre 2",
        "chambre 3",
        "",
        "",
    ]
    # Two of its three photos are of a bedroom: the room is a bedroom.
    assert rooms[0]["roomType"] == "bedroom"
    assert rooms[0]["photos"] == sorted(str(p.pk) for p in chambre_2)
    assert rooms[1]["photos"] == [str(chambre_3.pk)]
    assert sorted(room["photos"][0] for room in rooms[2:]) == sorted(str(p.pk) for p in unlabelled)
    assert all(room["room"] is None and room["roomType"] == "bedroom" for room in rooms[2:])
    assert snapshot.photo_count == 6
