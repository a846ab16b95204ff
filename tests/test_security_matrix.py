"""Cross-user matrix: every route of the URL conf × every HTTP method, as another user, as nobody,
and as a non-staff user on staff pages. Nobody reads or writes anyone else's data.

User A owns a project with DONE, ERROR and PENDING photos, AI metrics and an inventory. User B
(authenticated, not staff) asks for all of it by id. Each answer must be exactly the answer for an
id that does not exist (no existence oracle), carry none of A's data, and leave A's rows, files and
queues exactly as they were. The route table must name every `/api/` route: a new endpoint fails
`test_the_matrix_covers_every_api_route` until it is added here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ai_engine.fake import FakeProvider
from aimetrics.models import AiMetric
from inventory.models import InventorySnapshot
from inventory.services import inventory_sync
from photos.lifecycle import photo_enqueue
from photos.models import Photo, Project
from photos.services.analysis import Outcome, photo_analyze
from tests.factories import image_bytes, make_photo, make_project, make_token, make_user
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db

METHODS = ("get", "head", "options", "post", "put", "patch", "delete")
A_PROJECT_NAME = "A-private-project-4c1e"
A_ERROR = "A-private-error-message-77f0"
MISSING = "0b9f1a0e-6c4e-4a3f-9c55-4b8e0d1f2a33"


# --- the world ----------------------------------------------------------------------------------


@dataclass
class World:
    a: Any
    b: Any
    staff: Any
    a_project: Project
    a_photos: list[Photo]
    b_project: Project
    b_photo: Photo
    a_endpoint: WebhookEndpoint

    @property
    def a_ids(self) -> set[str]:
        photos = (str(photo.pk) for photo in self.a_photos)
        return {str(self.a_project.pk), str(self.a_endpoint.pk), *photos}


@pytest.fixture
def media_root(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def world(media_root: Path, django_capture_on_commit_callbacks: Any) -> World:
    a, b = make_user(username="alice"), make_user(username="bob")
    staff = make_user(username="staffer", staff=True)
    a_project = make_project(owner=a, name=A_PROJECT_NAME)
    done = make_photo(project=a_project, room_type="kitchen")
    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=done)
    assert photo_analyze(photo_id=str(done.pk), provider=FakeProvider()) == Outcome.DONE
    failed = make_photo(project=a_project)
    Photo.objects.filter(pk=failed.pk).update(
        status=Photo.Status.ERROR, error_code="UNKNOWN", error_message=A_ERROR
    )
    pending = make_photo(project=a_project)
    inventory_sync(project_id=a_project.pk)
    b_project = make_project(owner=b, name="B's move")
    b_photo = make_photo(project=b_project)
    a_endpoint = endpoint_create(owner=a, url="https://203.0.113.7/a-hook")
    return World(a, b, staff, a_project, [done, failed, pending], b_project, b_photo, a_endpoint)


def _a_state(world: World, media_root: Path, redis_client: Any) -> dict[str, Any]:
    """Everything of A's: rows, stored files, queued messages, A's user and token."""
    a = world.a
    photo_ids = [photo.pk for photo in world.a_photos]
    queued = [
        body.decode()
        for key in redis_client.scan_iter(match="*.msgs")
        for body in redis_client.hvals(key)
    ]
    return {
        "user": list(get_user_model().objects.filter(pk=a.pk).values()),
        "token": list(Token.objects.filter(user=a).values()),
        "projects": list(Project.objects.filter(owner=a).order_by("pk").values()),
        "photos": list(Photo.objects.filter(project__owner=a).order_by("pk").values()),
        "snapshots": list(
            InventorySnapshot.objects.filter(project__owner=a).order_by("pk").values()
        ),
        "metrics": list(AiMetric.objects.filter(photo_id__in=photo_ids).order_by("pk").values()),
        "webhooks": list(WebhookEndpoint.objects.filter(owner=a).values()),
        "deliveries": list(WebhookDelivery.objects.filter(endpoint__owner=a).values()),
        "files": sorted(
            str(path.relative_to(media_root))
            for path in (media_root / "photos" / str(world.a_project.pk)).rglob("*")
        ),
        "messages_about_a": sorted(
            body for body in queued if any(str(pk) in body for pk in world.a_ids)
        ),
    }


def _client(user: Any | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {make_token(user)}")
    return client


def _body(response: Any) -> str:
    return response.content.decode(errors="replace") if hasattr(response, "content") else ""


def _assert_no_a_data(world: World, response: Any, *, ids_too: bool = True) -> None:
    text = _body(response)
    assert A_PROJECT_NAME not in text
    assert A_ERROR not in text
    if ids_too:
        assert not any(pk in text for pk in world.a_ids), text[:300]


# --- the routes ---------------------------------------------------------------------------------


def _api_request(world: World, route: str, method: str, ids: dict[str, str]) -> dict[str, Any]:
    """What to send to one route: the path with ids filled in, and a body that names A's objects
    wherever the endpoint takes an id in its body."""
    path = "/" + route.replace("<str:project_id>", ids["project"]).replace(
        "<str:photo_id>", ids["photo"]
    ).replace("<str:endpoint_id>", ids.get("endpoint", MISSING))
    if route == "api/photos" and method == "post":
        image = SimpleUploadedFile("x.jpg", image_bytes(), content_type="image/jpeg")
        return {
            "path": path,
            "data": {"image": image, "projectId": ids["project"]},
            "format": "multipart",
        }
    if route == "api/photos/enqueue":
        body = {"photoId": ids["photo"], "force": True, "userId": str(world.a.pk)}
        return {"path": path, "data": body, "format": "json"}
    if route == "api/projects" and method in ("post", "put", "patch"):
        return {
            "path": path,
            "data": {"name": "B's new move", "owner": world.a.pk},
            "format": "json",
        }
    if method in ("put", "patch", "post"):
        body = {"name": "overwritten", "status": "DONE", "owner": world.b.pk}
        return {"path": path, "data": body, "format": "json"}
    if route == "api/photos" and method in ("get", "head"):
        return {"path": f"{path}?projectId={ids['project']}"}
    return {"path": path}


#: Every /api/ route: what user B gets for each method when it names A's objects (or, for lists
#: and creation, what B gets for its own). Object routes must also answer exactly as for an id
#: that does not exist; that is checked for every method, whatever the status. Methods a route
#: does not name get 405 (after authentication and permissions), OPTIONS too: there is no OPTIONS
#: metadata (REST_FRAMEWORK["DEFAULT_METADATA_CLASS"] is None).
API_ROUTES: dict[str, dict[str, int]] = {
    "api/projects": {"get": 200, "head": 200, "post": 201},
    "api/projects/<str:project_id>": {"get": 404, "head": 404},
    "api/projects/<str:project_id>/inventory": {"get": 404, "head": 404},
    "api/projects/<str:project_id>/inventory/sync": {"post": 404},
    "api/projects/<str:project_id>/inventory.csv": {"get": 404, "head": 404},
    "api/projects/<str:project_id>/inventory.pdf": {"get": 404, "head": 404},
    "api/photos": {"get": 404, "head": 404, "post": 404},
    "api/photos/enqueue": {"post": 404},
    "api/photos/<str:photo_id>": {"get": 404, "head": 404},
    "api/webhooks": {"get": 200, "head": 200, "post": 400},
    "api/webhooks/<str:endpoint_id>": {"get": 404, "head": 404, "patch": 404, "delete": 404},
    "api/webhooks/<str:endpoint_id>/test": {"post": 404},
    "api/webhooks/<str:endpoint_id>/rotate-secret": {"post": 404},
    "api/queues": dict.fromkeys(METHODS, 403),  # staff only, whatever the method
    "api/schema/": {"get": 200, "head": 200},
    "api/docs/": {"get": 200, "head": 200},
}
#: Routes that name an object (in the path or the body): compared with a missing object's answer.
OBJECT_ROUTES = {route for route in API_ROUTES if "<" in route} | {
    "api/photos",
    "api/photos/enqueue",
}


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def _all_routes() -> list[str]:
    return [route for route, _ in _walk(get_resolver().url_patterns)]


def test_the_matrix_covers_every_api_route() -> None:
    api_routes = {route for route in _all_routes() if route.startswith("api/")}

    assert api_routes == set(API_ROUTES)


# --- B against A, every API route × method ------------------------------------------------------


@pytest.mark.parametrize("route", list(API_ROUTES))
def test_another_user_never_reads_or_writes_through_any_method(
    world: World, media_root: Path, redis_client: Any, route: str, settings: Any
) -> None:
    settings.THROTTLE_UPLOAD_RATE = settings.THROTTLE_ENQUEUE_RATE = "off"
    before = _a_state(world, media_root, redis_client)
    b = _client(world.b)
    a_ids = {
        "project": str(world.a_project.pk),
        "photo": str(world.a_photos[0].pk),
        "endpoint": str(world.a_endpoint.pk),
    }
    missing_ids = {"project": MISSING, "photo": MISSING, "endpoint": MISSING}

    for method in METHODS:
        expected = API_ROUTES[route].get(method, 405)
        request = _api_request(world, route, method, a_ids)
        response = getattr(b, method)(**request)

        assert response.status_code == expected, (method, route, _body(response)[:300])
        _assert_no_a_data(world, response, ids_too=route != "api/schema/")
        if route in OBJECT_ROUTES:
            twin = getattr(b, method)(**_api_request(world, route, method, missing_ids))
            assert (twin.status_code, _body(twin)) == (response.status_code, _body(response)), (
                f"{method.upper()} {route}: A's object answers differently from a missing one"
            )

    assert _a_state(world, media_root, redis_client) == before


@pytest.mark.parametrize("photo_index", [0, 1, 2], ids=["done", "error", "pending"])
def test_another_user_cannot_read_or_enqueue_any_of_the_owners_photos(
    world: World,
    media_root: Path,
    redis_client: Any,
    django_capture_on_commit_callbacks: Any,
    photo_index: int,
) -> None:
    photo = world.a_photos[photo_index]
    before = _a_state(world, media_root, redis_client)
    b = _client(world.b)

    with django_capture_on_commit_callbacks(execute=True):
        read = b.get(f"/api/photos/{photo.pk}")
        enqueue = b.post(
            "/api/photos/enqueue", {"photoId": str(photo.pk), "force": True}, format="json"
        )
        sync = b.post(f"/api/projects/{world.a_project.pk}/inventory/sync")

    assert (read.status_code, enqueue.status_code, sync.status_code) == (404, 404, 404)
    assert _a_state(world, media_root, redis_client) == before


def test_lists_show_only_the_callers_objects_whatever_the_filters_and_cursor(
    world: World,
) -> None:
    a, b = _client(world.a), _client(world.b)
    for index in range(3):
        make_project(owner=world.a, name=f"A more {index}")
    a_page = a.get("/api/projects", {"pageSize": 1}).json()
    assert a_page["next"]

    pages = [
        b.get("/api/projects"),
        b.get(a_page["next"]),  # A's own cursor, replayed by B
        b.get("/api/projects", {"pageSize": 200}),
        b.get("/api/photos"),
        b.get("/api/photos", {"status": "DONE"}),
        b.get("/api/photos", {"status": "ERROR"}),
        b.get("/api/photos", {"projectId": str(world.b_project.pk)}),
    ]

    assert all(page.status_code == 200 for page in pages)
    for page in pages:
        _assert_no_a_data(world, page)
    assert [row["id"] for row in pages[0].json()["results"]] == [str(world.b_project.pk)]
    assert [row["id"] for row in pages[3].json()["results"]] == [str(world.b_photo.pk)]


def test_upload_into_someone_elses_project_stores_nothing(
    world: World, media_root: Path, redis_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    before = _a_state(world, media_root, redis_client)
    photos_before = Photo.objects.count()
    image = SimpleUploadedFile("x.jpg", image_bytes(seed=99), content_type="image/jpeg")

    with django_capture_on_commit_callbacks(execute=True):
        response = _client(world.b).post(
            "/api/photos",
            {"image": image, "projectId": str(world.a_project.pk), "enqueue": "true"},
            format="multipart",
        )

    assert response.status_code == 404
    assert Photo.objects.count() == photos_before
    assert _a_state(world, media_root, redis_client) == before


def test_a_user_id_in_the_body_never_acts_for_that_user(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        own = _client(world.b).post(
            "/api/photos/enqueue",
            {"photoId": str(world.b_photo.pk), "userId": str(world.a.pk)},
            format="json",
        )
        created = _client(world.b).post(
            "/api/projects", {"name": "Mine", "owner": world.a.pk}, format="json"
        )

    assert own.status_code == 202
    assert created.status_code == 201
    assert Project.objects.get(pk=created.json()["id"]).owner == world.b


# --- nobody, and non-staff on staff pages --------------------------------------------------------


@pytest.mark.parametrize("route", list(API_ROUTES))
def test_anonymous_gets_401_on_every_api_route_and_method(world: World, route: str) -> None:
    ids = {"project": str(world.a_project.pk), "photo": str(world.a_photos[0].pk)}
    anonymous = _client(None)

    for method in METHODS:
        response = getattr(anonymous, method)(**_api_request(world, route, method, ids))

        assert response.status_code == 401, (method, route)
        _assert_no_a_data(world, response, ids_too=False)


def test_staff_only_api_is_403_for_a_user_and_200_for_staff(world: World) -> None:
    assert _client(world.b).get("/api/queues").status_code == 403
    assert _client(world.staff).get("/api/queues").status_code == 200


def test_staff_do_not_see_other_users_objects_through_the_api(world: World) -> None:
    # The API is per owner for everyone; staff read other users' data in the admin only.
    staff = _client(world.staff)

    assert staff.get(f"/api/projects/{world.a_project.pk}").status_code == 404
    assert staff.get(f"/api/photos/{world.a_photos[0].pk}").status_code == 404
    _assert_no_a_data(world, staff.get("/api/projects"))


def _admin_paths(world: World) -> list[str]:
    """Every admin URL of the URL conf, with A's ids wherever an object is named."""
    photo = str(world.a_photos[0].pk)
    fills = {
        "<path:object_id>": photo,
        "<uuid:photo_id>": photo,
        "<slug:size>": "small",
        "<id>": str(world.a.pk),
        "<path:content_type_id>": "1",
        "<uuid:snapshot_id>": str(InventorySnapshot.objects.get(project=world.a_project).pk),
        "<str:fmt>": "pdf",
    }
    paths = []
    for route, _pattern in _walk(get_resolver().url_patterns):
        if not route.startswith("admin/"):
            continue
        if "(?P<url>" in route:  # the admin's catch-all
            paths.append("/admin/no/such/page/")
            continue
        if "(?P<app_label>" in route:
            labels = {model._meta.app_label for model in admin.site._registry}
            paths += [f"/admin/{label}/" for label in sorted(labels)]
            continue
        for placeholder, value in fills.items():
            route = route.replace(placeholder, value)
        assert "<" not in route, f"no value for a converter in {route}"
        paths.append("/" + route)
    return paths


#: Admin pages anybody may load: they show no data (the login form, the JS catalogue).
ADMIN_PUBLIC = {"/admin/login/", "/admin/jsi18n/", "/admin/logout/"}


@pytest.mark.parametrize("who", ["anonymous", "user"])
def test_admin_sends_anonymous_and_non_staff_users_to_the_login_page(
    world: World, media_root: Path, redis_client: Any, who: str
) -> None:
    before = _a_state(world, media_root, redis_client)
    client = Client()
    if who == "user":
        client.force_login(world.b)
    paths = _admin_paths(world)
    assert len(paths) > 40

    for path in paths:
        if path in ADMIN_PUBLIC:
            continue
        for method in ("get", "post"):
            response = getattr(client, method)(path, {"action": "delete_selected", "post": "yes"})

            assert response.status_code == 302, (method, path, response.status_code)
            assert response["Location"].startswith("/admin/login/"), (method, path)
            _assert_no_a_data(world, response)

    assert _a_state(world, media_root, redis_client) == before


def test_session_api_calls_need_the_csrf_token(world: World) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.b)

    forged = client.post("/api/projects", {"name": "forged"}, format="json")
    read = client.get("/api/projects")

    assert forged.status_code == 403
    assert "CSRF" in forged.json()["error"]
    assert read.status_code == 200
    assert not Project.objects.filter(name="forged").exists()


def test_metrics_are_forbidden_to_api_users_from_outside(world: World, settings: Any) -> None:
    settings.METRICS_TOKEN = "a-metrics-token-" + uuid.uuid4().hex
    outside: dict[str, Any] = {"REMOTE_ADDR": "203.0.113.9"}

    with_user_token = _client(world.b).get("/metrics", **outside)
    anonymous = Client().get("/metrics", **outside)

    assert (with_user_token.status_code, anonymous.status_code) == (403, 403)
    assert json.dumps(A_PROJECT_NAME) not in with_user_token.content.decode()
