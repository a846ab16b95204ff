"""API tests: every endpoint of the contract through DRF's client, real PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from ai_engine.fake import FakeProvider
from inventory.models import InventorySnapshot
from inventory.services import inventory_request_sync, inventory_sync
from photos.lifecycle import photo_enqueue
from photos.models import Photo, Project
from photos.services.analysis import Outcome, photo_analyze
from tests.factories import image_bytes, make_photo, make_project, make_token, make_user

pytestmark = pytest.mark.django_db

PHOTO_FIELDS = {
    "id",
    "projectId",
    "status",
    "roomType",
    "room",
    "analysis",
    "errorCode",
    "errorMessage",
    "attempts",
    "processedAt",
    "createdAt",
    "updatedAt",
    # Added by issue 13 (new fields may be added, none changed): progress of the analysis.
    "stage",
    "progress",
}
QUEUE_FIELDS = {"name", "waiting", "delayed", "active", "completed", "failed", "dead", "total"}
ANY_ID = "3f1c6a52-8d0e-4c59-9a55-0d4f7b1e2a10"
API_ENDPOINTS = [
    ("get", "/api/projects"),
    ("post", "/api/projects"),
    ("get", f"/api/projects/{ANY_ID}"),
    ("get", f"/api/projects/{ANY_ID}/inventory"),
    ("post", f"/api/projects/{ANY_ID}/inventory/sync"),
    ("get", "/api/photos"),
    ("post", "/api/photos"),
    ("post", "/api/photos/enqueue"),
    ("get", f"/api/photos/{ANY_ID}"),
    ("get", "/api/queues"),
]


# --- helpers ------------------------------------------------------------------------------------


def _client_for(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {make_token(user)}")
    return client


def _upload(
    api: APIClient,
    project: Project,
    data: bytes,
    *,
    filename: str = "room.jpg",
    content_type: str = "image/jpeg",
    **fields: Any,
) -> Any:
    image = SimpleUploadedFile(filename, data, content_type=content_type)
    body = {"image": image, "projectId": str(project.pk), **fields}
    return api.post("/api/photos", body, format="multipart")


def _enqueue(api: APIClient, **body: Any) -> Any:
    return api.post("/api/photos/enqueue", body, format="json")


def _stored_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def _done_photo(capture: Any, *, project: Project, room_type: str | None = None) -> Photo:
    """A photo analysed by the fake provider, the way a worker would."""
    photo = make_photo(project=project, room_type=room_type)
    with capture(execute=True):
        photo_enqueue(photo=photo)
    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
    photo.refresh_from_db()
    return photo


def _set_status(photo: Photo, status: str) -> None:
    Photo.objects.filter(pk=photo.pk).update(status=status)


@pytest.fixture
def media_root(settings: Any, tmp_path: Path) -> Path:
    """An empty MEDIA_ROOT of this test alone, so a walk shows exactly what the test stored."""
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def project(user: Any) -> Project:
    return make_project(owner=user, name="Our move")


@pytest.fixture
def stranger_project(db: Any) -> Project:
    return make_project(owner=make_user(), name="Not yours")


# --- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), API_ENDPOINTS)
def test_api_without_credentials_is_401(method: str, path: str) -> None:
    response = getattr(APIClient(), method)(path)

    assert response.status_code == 401
    assert response.json()["error"]
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_schema_and_docs_without_credentials_are_401(path: str) -> None:
    response = APIClient().get(path)

    assert response.status_code == 401


@pytest.mark.parametrize(("method", "path"), API_ENDPOINTS)
def test_api_with_unknown_token_is_401(method: str, path: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")

    response = getattr(client, method)(path)

    assert response.status_code == 401
    assert response.json() == {"error": "Invalid token."}


def test_session_login_gives_access_to_the_api(user: Any) -> None:
    client = APIClient()
    assert client.login(username=user.username, password="pw")

    created = client.post("/api/projects", {"name": "By session"}, format="json")
    listed = client.get("/api/projects")

    assert created.status_code == 201
    assert listed.status_code == 200
    assert [row["name"] for row in listed.json()["results"]] == ["By session"]


def test_force_login_session_gives_access_to_a_photo(user: Any, project: Project) -> None:
    photo = make_photo(project=project)
    client = APIClient()
    client.force_login(user)

    response = client.get(f"/api/photos/{photo.pk}")

    assert response.status_code == 200
    assert response.json()["photo"]["id"] == str(photo.pk)


def test_someone_elses_project_is_404(api: APIClient, stranger_project: Project) -> None:
    response = api.get(f"/api/projects/{stranger_project.pk}")

    assert response.status_code == 404
    assert response.json() == {"error": "No such project."}


def test_someone_elses_photo_is_404(api: APIClient, stranger_project: Project) -> None:
    photo = make_photo(project=stranger_project)

    response = api.get(f"/api/photos/{photo.pk}")

    assert response.status_code == 404
    assert response.json() == {"error": "No such photo."}


def test_enqueue_of_someone_elses_photo_is_404_and_sends_nothing(
    api: APIClient,
    stranger_project: Project,
    photo_queue: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = make_photo(project=stranger_project)

    with django_capture_on_commit_callbacks(execute=True):
        response = _enqueue(api, photoId=str(photo.pk))

    photo.refresh_from_db()
    assert response.status_code == 404
    assert photo.queued_at is None
    assert photo_queue.all() == []


def test_upload_to_someone_elses_project_is_404_and_stores_nothing(
    api: APIClient, stranger_project: Project, media_root: Path
) -> None:
    response = _upload(api, stranger_project, image_bytes())

    assert response.status_code == 404
    assert not Photo.objects.exists()
    assert _stored_files(media_root) == []


def test_inventory_of_someone_elses_project_is_404(
    api: APIClient,
    stranger_project: Project,
    inventory_queue: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    inventory_sync(project_id=stranger_project.pk)

    with django_capture_on_commit_callbacks(execute=True):
        sync = api.post(f"/api/projects/{stranger_project.pk}/inventory/sync")
    read = api.get(f"/api/projects/{stranger_project.pk}/inventory")

    assert (sync.status_code, read.status_code) == (404, 404)
    assert inventory_queue.all() == []


def test_photo_list_of_someone_elses_project_is_404(
    api: APIClient, stranger_project: Project
) -> None:
    make_photo(project=stranger_project)

    response = api.get("/api/photos", {"projectId": str(stranger_project.pk)})

    assert response.status_code == 404


def test_queues_are_forbidden_to_non_staff(api: APIClient) -> None:
    response = api.get("/api/queues")

    assert response.status_code == 403
    assert response.json()["error"]


def test_queues_show_real_figures_to_staff(
    project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    staff = _client_for(make_user(staff=True))
    waiting = make_photo(project=project)
    failed = make_photo(project=project)
    _set_status(failed, Photo.Status.ERROR)
    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=waiting)

    response = staff.get("/api/queues")

    assert response.status_code == 200
    queues = {row["name"]: row for row in response.json()["queues"]}
    assert set(queues) == {
        "photo-analyze-high",
        "photo-analyze",
        "inventory-sync",
        "webhook-deliver",
    }
    assert all(set(row) == QUEUE_FIELDS for row in queues.values())
    assert queues["photo-analyze"] == {
        "name": "photo-analyze",
        "waiting": 1,
        "delayed": 0,
        "active": 0,
        "completed": 0,
        "failed": 1,
        "dead": 0,
        "total": 2,
    }
    assert queues["inventory-sync"]["waiting"] == 0
    assert queues["inventory-sync"]["total"] == 0
    assert queues["webhook-deliver"]["total"] == 0


def test_queues_count_inventory_syncs_waiting_and_completed(
    project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    staff = _client_for(make_user(staff=True))
    inventory_sync(project_id=project.pk)  # one snapshot: a completed sync
    with django_capture_on_commit_callbacks(execute=True):
        inventory_request_sync(project_id=project.pk, delay_ms=0)

    response = staff.get("/api/queues")

    inventory = {row["name"]: row for row in response.json()["queues"]}["inventory-sync"]
    assert (inventory["waiting"], inventory["completed"], inventory["total"]) == (1, 1, 2)


# --- projects -----------------------------------------------------------------------------------


def test_create_project_returns_201_with_id_name_and_created_at(api: APIClient, user: Any) -> None:
    response = api.post("/api/projects", {"name": "  Flat in Lyon  "}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "createdAt", "priority"}
    assert body["name"] == "Flat in Lyon"
    assert body["priority"] == "normal"
    project = Project.objects.get(pk=body["id"])
    assert project.owner == user
    assert body["createdAt"]


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "   "}], ids=["missing", "empty", "blank"]
)
def test_create_project_without_a_name_is_400(api: APIClient, body: dict[str, Any]) -> None:
    response = api.post("/api/projects", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"].startswith("name: ")
    assert not Project.objects.exists()


def test_project_list_shows_only_own_projects_newest_first_with_cursor_pages(
    api: APIClient, user: Any, stranger_project: Project
) -> None:
    own = [make_project(owner=user, name=f"Move {n}") for n in range(3)]

    first = api.get("/api/projects", {"pageSize": 2}).json()
    second = api.get(first["next"])

    assert set(first) == {"next", "previous", "results"}
    assert first["previous"] is None and first["next"]
    page_two = second.json()
    assert page_two["next"] is None and page_two["previous"]
    names = [row["name"] for row in first["results"] + page_two["results"]]
    assert names == ["Move 2", "Move 1", "Move 0"]
    assert {row["id"] for row in first["results"] + page_two["results"]} == {str(p.pk) for p in own}


def test_project_detail_counts_photos_by_every_status(api: APIClient, project: Project) -> None:
    photos = [make_photo(project=project) for _ in range(4)]
    _set_status(photos[1], Photo.Status.PROCESSING)
    _set_status(photos[2], Photo.Status.DONE)
    _set_status(photos[3], Photo.Status.DONE)
    make_photo()  # someone else's project: not counted

    response = api.get(f"/api/projects/{project.pk}")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["name"]) == (str(project.pk), "Our move")
    assert body["photoCounts"] == {"PENDING": 1, "PROCESSING": 1, "DONE": 2, "ERROR": 0}


def test_project_detail_of_an_empty_project_has_all_counts_at_zero(
    api: APIClient, project: Project
) -> None:
    response = api.get(f"/api/projects/{project.pk}")

    assert response.json()["photoCounts"] == {"PENDING": 0, "PROCESSING": 0, "DONE": 0, "ERROR": 0}


def test_project_detail_with_a_non_uuid_id_is_404(api: APIClient) -> None:
    response = api.get("/api/projects/not-a-uuid")

    assert response.status_code == 404
    assert response.json() == {"error": "No such project."}


# --- uploads ------------------------------------------------------------------------------------


def test_upload_stores_the_photo_and_returns_every_camelcase_field(
    api: APIClient, project: Project, media_root: Path, photo_queue: Any
) -> None:
    response = _upload(api, project, image_bytes(), roomType="kitchen")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"photo"}  # no jobId: not enqueued
    photo = body["photo"]
    assert set(photo) == PHOTO_FIELDS
    assert photo["projectId"] == str(project.pk)
    assert (photo["status"], photo["roomType"], photo["attempts"]) == ("PENDING", "kitchen", 0)
    assert (photo["analysis"], photo["errorCode"], photo["errorMessage"]) == (None, None, None)
    assert photo["processedAt"] is None
    assert photo["createdAt"] and photo["updatedAt"]
    stored = Photo.objects.get(pk=photo["id"])
    assert (stored.image_format, stored.image_width, stored.image_height) == ("jpg", 320, 240)
    assert _stored_files(media_root) == [media_root / f"photos/{project.pk}/{stored.pk}.jpg"]
    assert photo_queue.all() == []


def test_upload_of_png_and_webp_is_accepted(
    api: APIClient, project: Project, media_root: Path
) -> None:
    png = _upload(api, project, image_bytes(fmt="PNG"), filename="a.png")
    webp = _upload(api, project, image_bytes(fmt="WEBP"), filename="a.webp")

    assert (png.status_code, webp.status_code) == (201, 201)
    formats = sorted(Photo.objects.values_list("image_format", flat=True))
    assert formats == ["png", "webp"]
    assert len(_stored_files(media_root)) == 2


def test_upload_with_enqueue_returns_job_id_and_sends_one_message(
    api: APIClient,
    project: Project,
    photo_queue: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(api, project, image_bytes(), enqueue="true")

    assert response.status_code == 201
    photo_id = response.json()["photo"]["id"]
    assert response.json()["jobId"] == f"photo-{photo_id}"
    assert [message["args"] for message in photo_queue.ready()] == [[photo_id]]
    assert Photo.objects.get(pk=photo_id).queued_at is not None


REJECTED_UPLOADS = [
    pytest.param(b"just some notes, certainly not pixels", "not an image", id="text"),
    pytest.param(b"", "empty", id="empty"),
    pytest.param(image_bytes(fmt="GIF"), "Unsupported image format GIF", id="gif"),
    pytest.param(image_bytes(fmt="BMP"), "Unsupported image format BMP", id="bmp"),
    pytest.param(image_bytes()[:200], "damaged or truncated", id="jpeg-cut-in-its-header"),
    pytest.param(image_bytes(fmt="PNG")[:300], "damaged or truncated", id="png-truncated"),
    pytest.param(
        image_bytes()[: len(image_bytes()) // 2],
        "damaged or truncated",
        id="jpeg-truncated",
    ),
]


@pytest.mark.parametrize(("data", "message"), REJECTED_UPLOADS)
def test_rejected_upload_is_400_and_stores_nothing(
    api: APIClient,
    project: Project,
    media_root: Path,
    photo_queue: Any,
    django_capture_on_commit_callbacks: Any,
    data: bytes,
    message: str,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(api, project, data, enqueue="true")

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not Photo.objects.exists()
    assert _stored_files(media_root) == []
    assert photo_queue.all() == []


def test_upload_over_the_size_limit_is_413_and_stores_nothing(
    api: APIClient, project: Project, media_root: Path, settings: Any
) -> None:
    data = image_bytes()
    settings.UPLOAD_MAX_BYTES = len(data) - 1

    response = _upload(api, project, data)

    assert response.status_code == 413
    assert response.json() == {
        "error": f"The file is {len(data)} bytes; the limit is {len(data) - 1} bytes."
    }
    assert not Photo.objects.exists()
    assert _stored_files(media_root) == []


def test_upload_exactly_at_the_size_limit_is_accepted(
    api: APIClient, project: Project, media_root: Path, settings: Any
) -> None:
    data = image_bytes()
    settings.UPLOAD_MAX_BYTES = len(data)

    assert _upload(api, project, data).status_code == 201


def test_upload_with_an_unknown_room_type_is_400_and_stores_nothing(
    api: APIClient, project: Project, media_root: Path
) -> None:
    response = _upload(api, project, image_bytes(), roomType="ballroom")

    assert response.status_code == 400
    assert response.json()["error"].startswith("roomType: ")
    assert not Photo.objects.exists()
    assert _stored_files(media_root) == []


def test_upload_without_an_image_or_project_is_400(api: APIClient, media_root: Path) -> None:
    response = api.post("/api/photos", {"roomType": "kitchen"}, format="multipart")

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"image", "projectId"}
    assert _stored_files(media_root) == []


# --- enqueue ------------------------------------------------------------------------------------


def test_enqueue_returns_202_enqueued_waiting_and_sends_a_message(
    api: APIClient,
    project: Project,
    photo_queue: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = make_photo(project=project)

    with django_capture_on_commit_callbacks(execute=True):
        response = _enqueue(api, photoId=str(photo.pk), roomType="bedroom", userId="legacy-42")

    assert response.status_code == 202
    assert response.json() == {
        "success": True,
        "status": "enqueued",
        "jobId": f"photo-{photo.pk}",
        "photoId": str(photo.pk),
        "queuePosition": "waiting",
    }
    photo.refresh_from_db()
    assert photo.room_type == "bedroom"
    assert photo.queued_at is not None
    assert [message["args"] for message in photo_queue.ready()] == [[str(photo.pk)]]


def test_enqueue_twice_sends_one_message(
    api: APIClient,
    project: Project,
    photo_queue: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = make_photo(project=project)

    with django_capture_on_commit_callbacks(execute=True):
        first = _enqueue(api, photoId=str(photo.pk))
        second = _enqueue(api, photoId=str(photo.pk))

    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["status"] == "enqueued"
    assert (second.json()["status"], second.json()["queuePosition"]) == (
        "already_queued",
        "waiting",
    )
    assert second.json()["jobId"] == f"photo-{photo.pk}"
    assert len(photo_queue.all()) == 1


def test_enqueue_of_a_processing_photo_is_already_processing(
    api: APIClient,
    project: Project,
    photo_queue: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = make_photo(project=project)
    _set_status(photo, Photo.Status.PROCESSING)

    with django_capture_on_commit_callbacks(execute=True):
        response = _enqueue(api, photoId=str(photo.pk))

    assert response.status_code == 202
    assert (response.json()["status"], response.json()["queuePosition"]) == (
        "already_processing",
        "active",
    )
    assert photo_queue.all() == []


def test_enqueue_of_a_done_photo_is_already_done_unless_forced(
    api: APIClient,
    project: Project,
    photo_queue: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = _done_photo(django_capture_on_commit_callbacks, project=project)
    assert len(photo_queue.all()) == 1  # the first message, never consumed: no worker runs here

    with django_capture_on_commit_callbacks(execute=True):
        plain = _enqueue(api, photoId=str(photo.pk))
    assert len(photo_queue.all()) == 1
    with django_capture_on_commit_callbacks(execute=True):
        forced = _enqueue(api, photoId=str(photo.pk), force=True)

    assert (plain.json()["status"], plain.json()["queuePosition"]) == ("already_done", "done")
    assert (forced.json()["status"], forced.json()["queuePosition"]) == ("enqueued", "waiting")
    assert [message["args"] for message in photo_queue.ready()] == [[str(photo.pk)]] * 2
    photo.refresh_from_db()
    assert photo.status == Photo.Status.DONE  # the old analysis stays readable meanwhile
    assert photo.analysis is not None


def test_enqueue_of_a_failed_photo_queues_it_again(
    api: APIClient,
    project: Project,
    photo_queue: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = make_photo(project=project)
    Photo.objects.filter(pk=photo.pk).update(
        status=Photo.Status.ERROR, attempts=3, error_code="PROVIDER_DOWN"
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = _enqueue(api, photoId=str(photo.pk))

    assert response.status_code == 202
    assert (response.json()["status"], response.json()["queuePosition"]) == (
        "enqueued",
        "waiting",
    )
    photo.refresh_from_db()
    assert (photo.status, photo.attempts) == (Photo.Status.PENDING, 0)
    assert len(photo_queue.all()) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "photoId"), ({"photoId": "not-a-uuid"}, "photoId"), ({"photoId": ""}, "photoId")],
    ids=["missing", "not-a-uuid", "empty"],
)
def test_enqueue_without_a_valid_photo_id_is_400(
    api: APIClient, body: dict[str, Any], field: str
) -> None:
    response = _enqueue(api, **body)

    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}: ")
    assert set(response.json()["fields"]) == {field}


def test_enqueue_with_an_unknown_room_type_is_400(api: APIClient, project: Project) -> None:
    photo = make_photo(project=project)

    response = _enqueue(api, photoId=str(photo.pk), roomType="ballroom")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("roomType: 'ballroom' is not a room type; send one of living_room,")
    photo.refresh_from_db()
    assert photo.queued_at is None


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("salon", "living_room"),  # the old API's own example
        ("Cuisine", "kitchen"),
        ("chambre", "bedroom"),
        ("Salle de bain", "bathroom"),
        ("salle-de-bains", "bathroom"),
        ("Salle à manger", "dining_room"),
        ("SALLE_A_MANGER", "dining_room"),
        ("living room", "living_room"),
        ("Living-Room", "living_room"),
        ("sous-sol", "cellar"),
        ("kitchen", "kitchen"),
    ],
)
def test_old_clients_room_names_are_stored_as_our_keys(
    api: APIClient,
    project: Project,
    django_capture_on_commit_callbacks: Any,
    sent: str,
    stored: str,
) -> None:
    uploaded = _upload(api, project, image_bytes(), roomType=sent)
    photo = make_photo(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        enqueued = _enqueue(api, photoId=str(photo.pk), roomType=sent)

    assert uploaded.status_code == 201, uploaded.json()
    assert uploaded.json()["photo"]["roomType"] == stored
    assert enqueued.status_code == 202, enqueued.json()
    photo.refresh_from_db()
    assert photo.room_type == stored


def test_enqueue_of_an_unknown_photo_is_404(api: APIClient, photo_queue: Any) -> None:
    response = _enqueue(api, photoId=str(uuid.uuid4()))

    assert response.status_code == 404
    assert response.json() == {"error": "No such photo."}


# --- reading photos -----------------------------------------------------------------------------


def test_photo_detail_returns_the_photo_envelope(
    api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    photo = _done_photo(django_capture_on_commit_callbacks, project=project, room_type="office")

    response = api.get(f"/api/photos/{photo.pk}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"photo"}
    assert set(body["photo"]) == PHOTO_FIELDS
    assert body["photo"]["id"] == str(photo.pk)
    assert (body["photo"]["status"], body["photo"]["roomType"]) == ("DONE", "office")
    assert body["photo"]["attempts"] == 1
    assert body["photo"]["analysis"] == photo.analysis
    assert body["photo"]["processedAt"] is not None


@pytest.mark.parametrize("photo_id", ["not-a-uuid", "123", str(uuid.UUID(int=7))])
def test_photo_detail_of_a_missing_photo_is_404_json(api: APIClient, photo_id: str) -> None:
    response = api.get(f"/api/photos/{photo_id}")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "No such photo."}


def test_photo_list_filters_by_project_and_status(
    api: APIClient, user: Any, project: Project
) -> None:
    other_project = make_project(owner=user, name="Cellar")
    pending = make_photo(project=project)
    done = make_photo(project=project)
    _set_status(done, Photo.Status.DONE)
    elsewhere = make_photo(project=other_project)
    make_photo()  # another user's photo: never listed

    def ids(**query: str) -> set[str]:
        response = api.get("/api/photos", query)
        assert response.status_code == 200
        assert set(response.json()) == {"next", "previous", "results"}
        return {row["id"] for row in response.json()["results"]}

    assert ids() == {str(pending.pk), str(done.pk), str(elsewhere.pk)}
    assert ids(projectId=str(project.pk)) == {str(pending.pk), str(done.pk)}
    assert ids(status="DONE") == {str(done.pk)}
    assert ids(projectId=str(project.pk), status="PENDING") == {str(pending.pk)}
    assert ids(projectId=str(other_project.pk), status="DONE") == set()


def test_photo_list_rows_have_every_camelcase_field(api: APIClient, project: Project) -> None:
    make_photo(project=project)

    rows = api.get("/api/photos").json()["results"]

    assert len(rows) == 1
    assert set(rows[0]) == PHOTO_FIELDS


@pytest.mark.parametrize(
    ("query", "field"),
    [({"status": "FINISHED"}, "status"), ({"projectId": "nope"}, "projectId")],
)
def test_photo_list_with_an_invalid_filter_is_400(
    api: APIClient, query: dict[str, str], field: str
) -> None:
    response = api.get("/api/photos", query)

    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}: ")


# --- inventory ----------------------------------------------------------------------------------


def test_inventory_sync_is_202_enqueued_then_already_queued(
    api: APIClient,
    project: Project,
    inventory_queue: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(f"/api/projects/{project.pk}/inventory/sync")
        second = api.post(f"/api/projects/{project.pk}/inventory/sync")

    assert (first.status_code, second.status_code) == (202, 202)
    job_id = f"inventory-{project.pk}"
    assert first.json() == {"success": True, "status": "enqueued", "jobId": job_id}
    assert second.json() == {"success": True, "status": "already_queued", "jobId": job_id}
    assert [message["args"] for message in inventory_queue.ready()] == [[str(project.pk)]]


def test_inventory_is_404_before_the_first_sync(api: APIClient, project: Project) -> None:
    response = api.get(f"/api/projects/{project.pk}/inventory")

    assert response.status_code == 404
    assert response.json() == {"error": "This project has no inventory yet."}


def test_inventory_after_a_sync_sums_the_done_photos_by_room(
    api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    kitchen = [_done_photo(capture, project=project, room_type="kitchen") for _ in range(2)]
    bedroom = _done_photo(capture, project=project, room_type="bedroom")
    make_photo(project=project, room_type="bedroom")  # PENDING: not in the inventory
    _done_photo(capture, project=make_project(), room_type="kitchen")  # another project
    done = [*kitchen, bedroom]

    snapshot = inventory_sync(project_id=project.pk)
    response = api.get(f"/api/projects/{project.pk}/inventory")

    assert isinstance(snapshot, InventorySnapshot)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "projectId",
        "totalItems",
        "totalVolume",
        "rooms",
        "photoCount",
        "createdAt",
    }
    assert body["projectId"] == str(project.pk)
    assert body["photoCount"] == 3
    assert body["createdAt"]

    def items(photos: list[Photo]) -> int:
        return sum(p.analysis["totals"]["items"] for p in photos if p.analysis)

    def volume(photos: list[Photo]) -> float:
        total = sum(
            (Decimal(str(p.analysis["totals"]["volume_m3"])) for p in photos if p.analysis),
            Decimal("0"),
        )
        return float(total)

    assert body["totalItems"] == items(done) > 0
    assert body["totalVolume"] == volume(done) > 0
    # No labels: each photo is a room of its own (two kitchens are two rooms), and the totals
    # are the photos' sums as before labels existed.
    rooms = {room["photos"][0]: room for room in body["rooms"]}
    assert set(rooms) == {str(p.pk) for p in done}
    for photo in done:
        room = rooms[str(photo.pk)]
        assert set(room) == {"room", "roomType", "itemsCount", "volume_m3", "photos", "items"}
        assert room["photos"] == [str(photo.pk)]
        assert sum(line["quantity"] for line in room["items"]) == room["itemsCount"]
        assert (room["room"], room["roomType"]) == (None, photo.room_type)
        assert room["itemsCount"] == items([photo])
        assert room["volume_m3"] == volume([photo])


def test_inventory_shows_the_latest_snapshot(
    api: APIClient, project: Project, django_capture_on_commit_callbacks: Any
) -> None:
    inventory_sync(project_id=project.pk)
    first = api.get(f"/api/projects/{project.pk}/inventory").json()
    _done_photo(django_capture_on_commit_callbacks, project=project, room_type="garage")
    inventory_sync(project_id=project.pk)

    latest = api.get(f"/api/projects/{project.pk}/inventory").json()

    assert (first["photoCount"], first["totalItems"], first["rooms"]) == (0, 0, [])
    assert latest["photoCount"] == 1
    assert [room["roomType"] for room in latest["rooms"]] == ["garage"]


# --- health, schema, docs -----------------------------------------------------------------------


def test_healthz_is_ok_without_auth() -> None:
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_schema_is_openapi_3_with_every_path(api: APIClient) -> None:
    response = api.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/projects",
        "/api/projects/{project_id}",
        "/api/projects/{project_id}/inventory",
        "/api/projects/{project_id}/inventory/sync",
        "/api/photos",
        "/api/photos/enqueue",
        "/api/photos/{photo_id}",
        "/api/queues",
    } <= set(schema["paths"])
    assert set(schema["paths"]["/api/photos"]) >= {"get", "post"}
    assert "post" in schema["paths"]["/api/photos/enqueue"]


def test_docs_page_is_html_served_without_any_cdn(api: APIClient) -> None:
    response = api.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert "swagger-ui" in body
    assert "/api/schema/" in body
    assert "cdn.jsdelivr" not in body
    assert "unpkg" not in body
