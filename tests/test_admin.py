"""The staff admin: pages, filters, search, actions, image views, query counts, snapshot diffs."""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from ai_engine.fake import FakeProvider
from ai_engine.pricing import GENAI_PRICES, OVERRIDE, UNPRICED
from aimetrics.models import AiMetric
from aimetrics.services import aimetric_record
from infra.admin_tools import CappedCountPaginator
from inventory.admin import ProjectAdmin
from inventory.admin.actions import sync_project_inventory
from inventory.diff import snapshot_diff
from inventory.models import InventorySnapshot, VolumeCatalogueEntry
from inventory.services import inventory_sync
from photos.admin import PhotoAdmin, register_photo_action
from photos.admin import actions as admin_actions
from photos.lifecycle import photo_enqueue
from photos.models import Photo, Project
from photos.services.analysis import Outcome, photo_analyze
from photos.services.uploads import photo_create
from tests.factories import image_bytes, make_photo, make_project, make_user
from tests.fakeai import GPT, HAIKU_DATED, SONNET

pytestmark = pytest.mark.django_db

PHOTOS = "/admin/photos/photo/"
PROJECTS = "/admin/photos/project/"
SNAPSHOTS = "/admin/inventory/inventorysnapshot/"
METRICS = "/admin/aimetrics/aimetric/"


@pytest.fixture
def staff() -> Any:
    return make_user(staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def _done(photo: Photo) -> Photo:
    """Analyse the photo with the fake provider (its queue message is never sent: the test's
    transaction is rolled back before on_commit)."""
    photo_enqueue(photo=photo)
    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
    photo.refresh_from_db()
    return photo


def _analysis(photo: Photo) -> dict[str, Any]:
    assert isinstance(photo.analysis, dict)
    return photo.analysis


def _error(photo: Photo, code: str = "TIMEOUT") -> Photo:
    Photo.objects.filter(pk=photo.pk).update(
        status=Photo.Status.ERROR, error_code=code, error_message="provider timed out", attempts=3
    )
    photo.refresh_from_db()
    return photo


def _listed(response: Any) -> set[Any]:
    assert response.status_code == 200, response
    return {row.pk for row in response.context["cl"].result_list}


def _filter_link(response: Any, label: str) -> str:
    """The query string of a filter choice, as the sidebar links it."""
    page = response.content.decode()
    match = re.search(rf'<a href="(\?[^"]*)"[^>]*>{re.escape(label)}</a>', page)
    assert match, label
    return match.group(1).replace("&amp;", "&")


def _streamed(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def _messages(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def _act(
    client: Client, url: str, action: str, objects: list[Any], capture: Any
) -> tuple[Any, list[str]]:
    with capture(execute=True):
        response = client.post(
            url,
            {"action": action, "_selected_action": [str(obj.pk) for obj in objects], "index": 0},
            follow=True,
        )
    assert response.status_code == 200
    return response, _messages(response)


# --- every page ---------------------------------------------------------------------------------


def test_every_registered_model_has_working_list_and_change_pages(staff_client: Client) -> None:
    photo = _done(make_photo(room_type="kitchen"))
    _error(make_photo(project=photo.project))
    inventory_sync(project_id=photo.project_id)
    assert AiMetric.objects.exists() and VolumeCatalogueEntry.objects.exists()

    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        response = staff_client.get(changelist)
        assert response.status_code == 200, (changelist, response.status_code)
        instance = model_admin.get_queryset(response.wsgi_request).first()
        if instance is not None:
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[instance.pk])
            response = staff_client.get(change)
            assert response.status_code == 200, (change, response.status_code)


def test_photo_detail_shows_image_analysis_table_error_and_ai_calls(
    staff_client: Client,
) -> None:
    photo = _done(make_photo())
    analysis = _analysis(photo)
    item = analysis["items"][0]

    page = staff_client.get(f"{PHOTOS}{photo.pk}/change/").content.decode()

    assert reverse("admin:photos_photo_image", args=[photo.pk]) in page
    assert reverse("admin:photos_photo_thumbnail", args=[photo.pk, "large"]) in page
    assert "Items found by the analysis" in page
    assert f"<code>{item['key']}</code>" in page
    assert f"{analysis['totals']['volume_m3']:.2f}" in page
    for metric in AiMetric.objects.filter(photo_id=photo.pk):
        assert reverse("admin:aimetrics_aimetric_change", args=[metric.pk]) in page
        assert metric.operation in page
    assert f"{METRICS}?photo_id={photo.pk}" in page

    failed = _error(make_photo(), "RATE_LIMIT")
    page = staff_client.get(f"{PHOTOS}{failed.pk}/change/").content.decode()
    assert "RATE_LIMIT" in page and "provider timed out" in page
    assert "No analysis yet." in page


def test_photo_list_shows_thumbnail_owner_coloured_status_and_provider(
    staff_client: Client,
) -> None:
    project = make_project(owner=make_user(username="alice"))
    photo = _done(make_photo(project=project))

    page = staff_client.get(PHOTOS).content.decode()

    assert reverse("admin:photos_photo_thumbnail", args=[photo.pk, "small"]) in page
    assert "alice" in page
    assert re.search(r'<strong style="color: #[0-9a-f]{6}">done</strong>', page)
    assert f"fake / {_analysis(photo)['model']}" in page


# --- filters and search -------------------------------------------------------------------------


def test_photo_filters(staff_client: Client) -> None:
    project = make_project(name="Lyon")
    done = _done(make_photo(project=project, room_type="kitchen"))
    timeout = _error(make_photo(room_type="bedroom"), "TIMEOUT")
    bad = _error(make_photo(room_type="kitchen"), "BAD_INPUT")
    pending = make_photo(project=project)
    Photo.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(days=40))

    assert _listed(staff_client.get(PHOTOS, {"status__exact": "ERROR"})) == {timeout.pk, bad.pk}
    assert _listed(staff_client.get(PHOTOS, {"error_code": "BAD_INPUT"})) == {bad.pk}
    assert _listed(staff_client.get(PHOTOS, {"room_type": "kitchen"})) == {done.pk, bad.pk}
    assert _listed(staff_client.get(PHOTOS, {"provider": "fake"})) == {done.pk}
    assert _listed(staff_client.get(PHOTOS, {"provider": "openai"})) == set()
    assert _listed(staff_client.get(PHOTOS, {"project": str(project.pk)})) == {
        done.pk,
        pending.pk,
    }
    past_week = _filter_link(staff_client.get(PHOTOS), "Past 7 days")
    assert _listed(staff_client.get(PHOTOS + past_week)) == {done.pk, timeout.pk, bad.pk}
    both = staff_client.get(PHOTOS, {"project": str(project.pk), "status__exact": "DONE"})
    assert _listed(both) == {done.pk}


def test_a_project_filter_that_is_not_an_id_is_refused_not_a_crash(staff_client: Client) -> None:
    response = staff_client.get(PHOTOS, {"project": "not-a-uuid"})
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_photo_search_by_id_project_name_and_owner(staff_client: Client) -> None:
    alice = make_user(username="alice-mover")
    lyon = make_project(owner=alice, name="Flat in Lyon")
    first = make_photo(project=lyon)
    second = make_photo(project=lyon)
    other = make_photo(project=make_project(name="House in Brest"))

    assert _listed(staff_client.get(PHOTOS, {"q": str(first.pk)})) == {first.pk}
    assert _listed(staff_client.get(PHOTOS, {"q": f"  {str(first.pk).upper()} "})) == {first.pk}
    assert _listed(staff_client.get(PHOTOS, {"q": str(lyon.pk)})) == {first.pk, second.pk}
    assert _listed(staff_client.get(PHOTOS, {"q": "lyon"})) == {first.pk, second.pk}
    assert _listed(staff_client.get(PHOTOS, {"q": "alice-mo"})) == {first.pk, second.pk}
    assert _listed(staff_client.get(PHOTOS, {"q": "brest"})) == {other.pk}
    # Not UUIDs: a partial id, garbage, SQL-ish text. Nothing matches, nothing crashes.
    for term in [str(first.pk)[:8], "zzz-not-a-uuid", "' OR 1=1 --", "%_%"]:
        assert _listed(staff_client.get(PHOTOS, {"q": term})) == set(), term


def test_project_snapshot_and_metric_search_accept_any_term(staff_client: Client) -> None:
    photo = _done(make_photo(project=make_project(name="Villa")))
    snapshot = inventory_sync(project_id=photo.project_id)
    assert snapshot is not None

    assert _listed(staff_client.get(PROJECTS, {"q": str(photo.project_id)})) == {photo.project_id}
    assert _listed(staff_client.get(PROJECTS, {"q": "vill"})) == {photo.project_id}
    assert _listed(staff_client.get(SNAPSHOTS, {"q": str(photo.project_id)})) == {snapshot.pk}
    assert _listed(staff_client.get(SNAPSHOTS, {"q": "villa"})) == {snapshot.pk}
    metric_ids = set(AiMetric.objects.filter(photo_id=photo.pk).values_list("pk", flat=True))
    assert _listed(staff_client.get(METRICS, {"q": str(photo.pk)})) == metric_ids
    for url in (PROJECTS, SNAPSHOTS, METRICS):
        assert _listed(staff_client.get(url, {"q": "not-a-uuid-1234"})) == set()


# --- actions ------------------------------------------------------------------------------------


def test_rerun_analysis_queues_error_and_pending_photos_and_reports_counts(
    staff_client: Client, photo_queue: Any, django_capture_on_commit_callbacks: Any
) -> None:
    failed = _error(make_photo())
    pending = make_photo()
    already = make_photo()
    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=already)
    done = _done(make_photo())
    assert len(photo_queue.all()) == 1

    _response, messages = _act(
        staff_client,
        PHOTOS,
        "rerun_analysis",
        [failed, pending, already, done],
        django_capture_on_commit_callbacks,
    )

    assert messages == ["2 photos queued, 2 skipped (already queued: 1, not ERROR or PENDING: 1)"]
    failed.refresh_from_db()
    pending.refresh_from_db()
    done.refresh_from_db()
    assert failed.status == Photo.Status.PENDING and failed.queued_at is not None
    assert failed.attempts == 0  # a fresh budget of attempts
    assert pending.queued_at is not None
    assert done.status == Photo.Status.DONE and done.queued_at is None
    sent = sorted(message["args"][0] for message in photo_queue.all())
    assert sent == sorted(str(photo.pk) for photo in (failed, pending, already))


def test_rerun_analysis_with_nothing_to_do_warns(
    staff_client: Client, photo_queue: Any, django_capture_on_commit_callbacks: Any
) -> None:
    done = _done(make_photo())
    response, messages = _act(
        staff_client, PHOTOS, "rerun_analysis", [done], django_capture_on_commit_callbacks
    )
    assert messages == ["0 photos queued, 1 skipped (not ERROR or PENDING)"]
    assert next(iter(response.context["messages"])).tags == "warning"
    assert photo_queue.all() == []


def test_force_reanalysis_queues_done_photos_only(
    staff_client: Client, photo_queue: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = _done(make_photo())
    second = _done(make_photo())
    failed = _error(make_photo())

    _response, messages = _act(
        staff_client,
        PHOTOS,
        "force_reanalysis",
        [first, second, failed],
        django_capture_on_commit_callbacks,
    )

    assert messages == ["2 photos queued, 1 skipped (not DONE)"]
    for photo in (first, second):
        photo.refresh_from_db()
        assert photo.status == Photo.Status.DONE  # the old analysis stays readable meanwhile
        assert photo.queued_at is not None and photo.queued_force
    failed.refresh_from_db()
    assert failed.status == Photo.Status.ERROR and failed.queued_at is None
    assert sorted(m["args"][0] for m in photo_queue.all()) == sorted(
        [str(first.pk), str(second.pk)]
    )

    # A second run finds them queued already.
    _response, messages = _act(
        staff_client, PHOTOS, "force_reanalysis", [first], django_capture_on_commit_callbacks
    )
    assert messages == ["0 photos queued, 1 skipped (already queued)"]
    assert len(photo_queue.all()) == 2


def test_actions_stop_at_the_batch_limit_and_say_how_many_are_left(
    staff_client: Client,
    photo_queue: Any,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(admin_actions, "ACTION_BATCH_LIMIT", 2)
    failed = [_error(make_photo()) for _ in range(3)]

    _response, messages = _act(
        staff_client, PHOTOS, "rerun_analysis", failed, django_capture_on_commit_callbacks
    )

    assert messages == ["2 photos queued, 1 left for another run (at most 2 per run)"]
    assert len(photo_queue.all()) == 2
    assert Photo.objects.filter(status=Photo.Status.ERROR).count() == 1


def test_each_admin_is_registered_once_by_the_module_that_lists_its_actions() -> None:
    """No app replaces another's admin: the photo admin is photos' own, inventory's action on it
    arrives through photos' registry (once, however often it is registered), and the project
    admin is inventory's."""
    assert type(admin.site._registry[Photo]) is PhotoAdmin
    assert type(admin.site._registry[Project]) is ProjectAdmin
    register_photo_action(sync_project_inventory)
    assert admin_actions.registered_photo_actions().count(sync_project_inventory) == 1


def test_sync_inventory_action_queues_one_sync_per_project(
    staff_client: Client, inventory_queue: Any, django_capture_on_commit_callbacks: Any
) -> None:
    lyon, brest = make_project(name="Lyon"), make_project(name="Brest")
    photos = [make_photo(project=lyon), make_photo(project=lyon), make_photo(project=brest)]

    _response, messages = _act(
        staff_client, PHOTOS, "sync_project_inventory", photos, django_capture_on_commit_callbacks
    )

    assert messages == ["2 inventory syncs queued"]
    sent = sorted(message["args"][0] for message in inventory_queue.all())
    assert sent == sorted([str(lyon.pk), str(brest.pk)])
    assert Project.objects.filter(inventory_sync_requested_at__isnull=False).count() == 2

    _response, messages = _act(
        staff_client, PHOTOS, "sync_project_inventory", photos, django_capture_on_commit_callbacks
    )
    assert messages == ["0 inventory syncs queued, 2 skipped (already queued)"]
    assert len(inventory_queue.all()) == 2


def test_sync_inventory_action_on_projects(
    staff_client: Client, inventory_queue: Any, django_capture_on_commit_callbacks: Any
) -> None:
    project = make_project()

    _response, messages = _act(
        staff_client, PROJECTS, "sync_inventory", [project], django_capture_on_commit_callbacks
    )

    assert messages == ["1 inventory sync queued"]
    assert [message["args"][0] for message in inventory_queue.all()] == [str(project.pk)]


def test_actions_on_all_matching_photos_with_select_across(
    staff_client: Client, photo_queue: Any, django_capture_on_commit_callbacks: Any
) -> None:
    failed = [_error(make_photo()) for _ in range(3)]
    make_photo()  # PENDING, not matched by the filter

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            f"{PHOTOS}?status__exact=ERROR",
            {
                "action": "rerun_analysis",
                "select_across": "1",
                "_selected_action": [str(failed[0].pk)],
                "index": 0,
            },
            follow=True,
        )

    assert _messages(response) == ["3 photos queued"]
    assert len(photo_queue.all()) == 3


# --- read-only fields and permissions -----------------------------------------------------------


def test_status_and_analysis_cannot_be_changed_through_the_change_form(
    staff_client: Client,
) -> None:
    photo = _done(make_photo(room_type="kitchen"))
    analysis = photo.analysis
    url = f"{PHOTOS}{photo.pk}/change/"
    form = staff_client.get(url).context["adminform"].form
    assert set(form.fields) == {"room_type", "room_label"}

    response = staff_client.post(
        url,
        {
            "room_type": "bedroom",
            "room_label": "  Chambre   du HAUT ",
            "status": "ERROR",
            "analysis": '{"items": []}',
            "error_code": "TIMEOUT",
            "attempts": "99",
        },
    )

    assert response.status_code == 302
    photo.refresh_from_db()
    assert photo.room_type == "bedroom"
    # The label as staff typed it (trimmed), and the key that groups it with its room's photos.
    assert (photo.room_label, photo.room_key) == ("Chambre   du HAUT", "chambre du haut")
    assert photo.status == Photo.Status.DONE
    assert photo.analysis == analysis
    assert photo.error_code is None and photo.attempts == 1


def test_saving_a_form_does_not_undo_what_a_worker_wrote_meanwhile(staff: Any) -> None:
    photo = make_photo()
    project = photo.project
    request = RequestFactory().post("/")
    request.user = staff
    stale_photo = Photo.objects.get(pk=photo.pk)
    stale_project = Project.objects.get(pk=project.pk)
    # While the pages are open, a worker finishes the photo and a sync is requested.
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.DONE, analysis={"items": []})
    Project.objects.filter(pk=project.pk).update(inventory_sync_requested_at=timezone.now())

    for model, stale, data in [
        (Photo, stale_photo, {"room_type": "kitchen"}),
        (
            Project,
            stale_project,
            {"name": "Renamed", "owner": str(project.owner_id), "priority": "normal"},
        ),
    ]:
        model_admin = admin.site._registry[model]
        form = model_admin.get_form(request, stale, change=True)(data, instance=stale)
        assert form.is_valid(), form.errors
        model_admin.save_model(request, form.save(commit=False), form, change=True)

    photo.refresh_from_db()
    project.refresh_from_db()
    assert photo.room_type == "kitchen"
    assert photo.status == Photo.Status.DONE and photo.analysis == {"items": []}
    assert project.name == "Renamed" and project.inventory_sync_requested_at is not None


def test_snapshots_and_metrics_are_read_only(staff_client: Client) -> None:
    photo = _done(make_photo())
    snapshot = inventory_sync(project_id=photo.project_id)
    assert snapshot is not None
    metric = AiMetric.objects.filter(photo_id=photo.pk).first()
    assert metric is not None

    assert staff_client.get(f"{SNAPSHOTS}add/").status_code == 403
    assert staff_client.get(f"{METRICS}add/").status_code == 403
    assert staff_client.get(f"{PHOTOS}add/").status_code == 403
    response = staff_client.post(f"{SNAPSHOTS}{snapshot.pk}/change/", {"total_items": "0"})
    assert response.status_code == 403
    response = staff_client.post(f"{METRICS}{metric.pk}/change/", {"success": "off"})
    assert response.status_code == 403
    assert (
        staff_client.post(f"{SNAPSHOTS}{snapshot.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert staff_client.post(f"{METRICS}{metric.pk}/delete/", {"post": "yes"}).status_code == 403
    snapshot.refresh_from_db()
    assert snapshot.total_items == photo.items_count


def test_non_staff_are_sent_to_the_login_page(client: Client) -> None:
    photo = make_photo()
    urls = [PHOTOS, f"{PHOTOS}{photo.pk}/change/", PROJECTS, SNAPSHOTS, METRICS]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url

    client.force_login(make_user())  # logged in, not staff
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url


# --- image views --------------------------------------------------------------------------------


def _image_urls(photo: Photo) -> list[str]:
    return [
        reverse("admin:photos_photo_image", args=[photo.pk]),
        reverse("admin:photos_photo_thumbnail", args=[photo.pk, "small"]),
        reverse("admin:photos_photo_thumbnail", args=[photo.pk, "large"]),
    ]


def test_image_view_streams_the_original_to_staff(staff_client: Client) -> None:
    photo = make_photo()
    with photo.image.open("rb") as handle:
        original = handle.read()

    response = staff_client.get(reverse("admin:photos_photo_image", args=[photo.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert _streamed(response) == original
    assert "private" in response["Cache-Control"]


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"), ("HEIF", "image/heic")],
)
def test_every_accepted_format_gets_a_jpeg_thumbnail(
    staff_client: Client, fmt: str, content_type: str
) -> None:
    photo, _ = photo_create(
        project=make_project(), data=image_bytes(width=400, height=300, fmt=fmt)
    )

    original = staff_client.get(reverse("admin:photos_photo_image", args=[photo.pk]))
    thumb = staff_client.get(reverse("admin:photos_photo_thumbnail", args=[photo.pk, "small"]))

    assert original.status_code == 200 and original["Content-Type"] == content_type
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert image.format == "JPEG" and image.size == (160, 120)


def test_thumbnail_is_a_small_jpeg_cached_under_thumbs(staff_client: Client) -> None:
    project = make_project()
    photo, _ = photo_create(project=project, data=image_bytes(width=1600, height=1200, fmt="PNG"))
    url = reverse("admin:photos_photo_thumbnail", args=[photo.pk, "small"])

    response = staff_client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) == 160 and thumb.size == (160, 120)
    cached = f"thumbs/160/{project.pk}/{photo.pk}.jpg"
    assert default_storage.exists(cached)
    # The second request is served from the storage, not rendered again.
    with default_storage.open(cached, "wb") as handle:
        handle.write(b"cached bytes")
    assert staff_client.get(url).content == b"cached bytes"
    assert staff_client.get(f"{PHOTOS}{photo.pk}/thumbnail/huge/").status_code == 404


def test_thumbnail_of_a_large_jpeg_uses_draft_mode(staff_client: Client) -> None:
    photo, _ = photo_create(project=make_project(), data=image_bytes(width=2400, height=1800))
    response = staff_client.get(reverse("admin:photos_photo_thumbnail", args=[photo.pk, "large"]))
    with Image.open(io.BytesIO(response.content)) as thumb:
        assert thumb.size == (1280, 960)


def test_image_views_refuse_anonymous_non_staff_and_staff_without_permission(
    client: Client,
) -> None:
    photo = make_photo()
    for url in _image_urls(photo):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]

    client.force_login(make_user())
    for url in _image_urls(photo):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]

    clerk = make_user(staff=True)  # staff, but no permission on photos
    client.force_login(clerk)
    for url in _image_urls(photo):
        assert client.get(url).status_code == 403

    clerk.user_permissions.add(Permission.objects.get(codename="view_photo"))
    client.force_login(clerk)
    for url in _image_urls(photo):
        assert client.get(url).status_code == 200


def test_image_views_answer_404_for_unknown_or_missing_images(staff_client: Client) -> None:
    photo = make_photo()
    missing = "00000000-0000-0000-0000-000000000000"
    assert staff_client.get(f"{PHOTOS}{missing}/image/").status_code == 404
    assert staff_client.get(f"{PHOTOS}{missing}/thumbnail/small/").status_code == 404
    default_storage.delete(str(photo.image.name))
    for url in _image_urls(photo):
        assert staff_client.get(url).status_code == 404


def test_image_views_read_from_s3(
    staff_client: Client, s3_storage: str, s3: Any, media_root: Any
) -> None:
    photo = make_photo()
    with photo.image.open("rb") as handle:
        original = handle.read()

    image = staff_client.get(reverse("admin:photos_photo_image", args=[photo.pk]))
    thumb = staff_client.get(reverse("admin:photos_photo_thumbnail", args=[photo.pk, "small"]))

    assert image.status_code == 200 and _streamed(image) == original
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=s3_storage)["Contents"]]
    assert f"thumbs/160/{photo.project_id}/{photo.pk}.jpg" in keys
    assert not any(media_root.rglob("*.jpg")) if media_root.exists() else True


# --- query counts and counting ------------------------------------------------------------------


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("rows", [5, 50])
def test_photo_list_runs_a_bounded_number_of_queries(
    staff_client: Client, django_assert_max_num_queries: Any, rows: int
) -> None:
    owners = [make_user() for _ in range(3)]
    projects = [make_project(owner=owners[i % 3]) for i in range(5)]
    for index in range(rows):
        make_photo(project=projects[index % 5])
    _done(make_photo(project=projects[0]))

    with django_assert_max_num_queries(8):
        response = staff_client.get(PHOTOS)
    assert len(response.context["cl"].result_list) == min(rows + 1, 50)


def test_other_lists_run_the_same_queries_for_few_or_many_rows(staff_client: Client) -> None:
    def populate(count: int) -> None:
        for _ in range(count):
            photo = _done(make_photo())
            _error(make_photo(project=photo.project))
            inventory_sync(project_id=photo.project_id)
            inventory_sync(project_id=photo.project_id)

    populate(2)
    few = {url: _queries(staff_client, url) for url in (PROJECTS, SNAPSHOTS, METRICS)}
    populate(8)
    many = {url: _queries(staff_client, url) for url in (PROJECTS, SNAPSHOTS, METRICS)}
    assert many == few


def test_counting_stops_at_the_cap(staff_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CappedCountPaginator, "cap", 3)
    for _ in range(5):
        make_photo()

    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(PHOTOS, {"p": "1"})

    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT 4" in sql for sql in counts), counts
    page = response.content.decode()
    assert "More than 3 photos" in page
    assert "Select all matching photos (more than 3)" in page
    assert response.context["cl"].result_count == 3


def test_small_lists_show_their_exact_count(staff_client: Client) -> None:
    for _ in range(2):
        make_photo()
    page = staff_client.get(PHOTOS).content.decode()
    assert "2 photos" in page and "More than" not in page


# --- projects and snapshots ---------------------------------------------------------------------


def test_project_list_counts_photos_by_status_and_links_the_latest_inventory(
    staff_client: Client,
) -> None:
    project = make_project()
    _done(make_photo(project=project))
    _done(make_photo(project=project))
    _error(make_photo(project=project))
    make_photo(project=project)
    snapshot = inventory_sync(project_id=project.pk)
    assert snapshot is not None
    empty = make_project()

    response = staff_client.get(PROJECTS)

    rows = {row.pk: row for row in response.context["cl"].result_list}
    row = rows[project.pk]
    assert (row.pending_count, row.processing_count, row.done_count, row.error_count) == (
        1,
        0,
        2,
        1,
    )
    assert rows[empty.pk].done_count == 0 and rows[empty.pk].latest_snapshot_id is None
    page = response.content.decode()
    assert reverse("admin:inventory_inventorysnapshot_change", args=[snapshot.pk]) in page
    assert f"{snapshot.total_items} items, {snapshot.total_volume} m³" in page

    detail = staff_client.get(f"{PROJECTS}{project.pk}/change/").content.decode()
    assert f"{SNAPSHOTS}?project={project.pk}" in detail
    assert f"{PHOTOS}?project={project.pk}&amp;status__exact=ERROR" in detail


def _snapshot(project: Project, rooms: list[dict[str, Any]], minutes_ago: int) -> InventorySnapshot:
    snapshot = InventorySnapshot.objects.create(
        project=project,
        total_items=sum(room["itemsCount"] for room in rooms),
        total_volume=sum((Decimal(str(room["volume_m3"])) for room in rooms), Decimal("0")),
        rooms=rooms,
        photo_count=len(rooms),
    )
    InventorySnapshot.objects.filter(pk=snapshot.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    snapshot.refresh_from_db()
    return snapshot


def _room(room_type: str, items: int, volume: str) -> dict[str, Any]:
    return {"roomType": room_type, "itemsCount": items, "volume_m3": float(volume), "photos": []}


def test_snapshot_diff_per_room_and_in_total(staff_client: Client) -> None:
    project = make_project()
    other = _snapshot(make_project(), [_room("garage", 9, "9")], minutes_ago=5)
    first = _snapshot(project, [_room("kitchen", 3, "1.5"), _room("bedroom", 2, "2")], 10)
    second = _snapshot(project, [_room("kitchen", 5, "2"), _room("living_room", 1, "0.5")], 1)

    diff = snapshot_diff(second, first)
    changes = {room.room_type: (room.items_delta, room.volume_delta) for room in diff.rooms}
    assert changes == {
        "kitchen": (2, Decimal("0.5")),
        "living_room": (1, Decimal("0.5")),
        "bedroom": (-2, Decimal("-2")),
    }
    assert (diff.items_delta, diff.volume_delta) == (1, Decimal("-1.00"))
    assert snapshot_diff(first, None).items_delta == 5

    page = staff_client.get(f"{SNAPSHOTS}{second.pk}/change/").content.decode()
    assert re.search(r'class="delta-items">\+2<', page)
    assert re.search(r'class="delta-volume">\+0\.50<', page)
    assert re.search(r'class="delta-items">-2<', page)
    assert re.search(r'class="delta-volume">-2\.00<', page)
    assert re.search(r'class="delta-items-total">\+1<', page)
    assert re.search(r'class="delta-volume-total">-1\.00<', page)
    assert reverse("admin:inventory_inventorysnapshot_change", args=[first.pk]) in page
    assert f"{SNAPSHOTS}?project={project.pk}" in page

    page = staff_client.get(f"{SNAPSHOTS}{first.pk}/change/").content.decode()
    assert "first snapshot" in page

    listed = staff_client.get(SNAPSHOTS, {"project": str(project.pk)})
    assert _listed(listed) == {first.pk, second.pk}
    rows = {row.pk: row for row in listed.context["cl"].result_list}
    assert rows[second.pk].previous_items == 5 and rows[first.pk].previous_items is None
    assert other.pk not in rows


# --- AI metrics ---------------------------------------------------------------------------------


def test_ai_metric_filters_and_photo_link(staff_client: Client) -> None:
    photo = _done(make_photo())
    ok = AiMetric.objects.filter(photo_id=photo.pk)
    ok_ids = set(ok.values_list("pk", flat=True))
    failed = AiMetric.objects.create(
        provider="openai",
        model=GPT,
        operation="analyze_photo",
        latency_ms=30000,
        success=False,
        error_type="TIMEOUT",
        photo_id=photo.pk,
    )
    AiMetric.objects.filter(pk=failed.pk).update(created_at=timezone.now() - timedelta(days=3))

    assert _listed(staff_client.get(METRICS, {"provider": "openai"})) == {failed.pk}
    assert _listed(staff_client.get(METRICS, {"model": GPT})) == {failed.pk}
    detect = set(ok.filter(operation="detect_room", success=True).values_list("pk", flat=True))
    assert _listed(staff_client.get(METRICS, {"operation": "detect_room"})) == detect
    assert _listed(staff_client.get(METRICS, {"success__exact": "0"})) == {failed.pk}
    assert _listed(staff_client.get(METRICS, {"success__exact": "1"})) == ok_ids
    assert _listed(staff_client.get(METRICS, {"error_type": "TIMEOUT"})) == {failed.pk}
    today = _filter_link(staff_client.get(METRICS), "Today")
    assert _listed(staff_client.get(METRICS + today)) == ok_ids
    assert _listed(staff_client.get(METRICS, {"photo_id": str(photo.pk)})) == ok_ids | {failed.pk}

    page = staff_client.get(METRICS).content.decode()
    assert reverse("admin:photos_photo_change", args=[photo.pk]) in page
    assert ">fake-vision-1<" in page  # the model filter offers the models recently used


def test_ai_metrics_show_and_filter_who_priced_each_call(staff_client: Client) -> None:
    def call(model: str, cost: str, source: str) -> AiMetric:
        return aimetric_record(
            provider="anthropic",
            model=model,
            operation="analyze_photo",
            latency_ms=900,
            success=True,
            tokens_in=1000,
            tokens_out=500,
            cost_usd=Decimal(cost),
            price_source=source,
        )

    priced = call(SONNET, "0.010500", GENAI_PRICES)
    overridden = call(HAIKU_DATED, "0.002000", OVERRIDE)
    unknown = call("claude-mystery-9", "0", UNPRICED)

    listed = staff_client.get(METRICS)
    page = html.unescape(listed.content.decode())
    assert "<th" in page and "Price source" in page  # a column of the list
    assert GENAI_PRICES in page and ">AI_PRICES<" in page
    assert _listed(staff_client.get(METRICS, {"price_source": UNPRICED})) == {unknown.pk}
    assert _listed(staff_client.get(METRICS, {"price_source": OVERRIDE})) == {overridden.pk}
    detail = staff_client.get(f"{METRICS}{priced.pk}/change/")
    assert detail.status_code == 200
    assert "Price source" in detail.content.decode() and GENAI_PRICES in detail.content.decode()
