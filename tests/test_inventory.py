"""Inventory snapshots and the coalesced `inventory-sync` requests, against PostgreSQL and Redis."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ai_engine.errors import ErrorCode
from ai_engine.fake import FakeProvider
from inventory.models import InventorySnapshot
from inventory.services import inventory_request_sync, inventory_sync
from photos.lifecycle import photo_enqueue
from photos.models import Photo, Project
from photos.services.analysis import Outcome, photo_analyze
from photos.signals import photo_done
from tests.factories import make_photo, make_project, store_analysis

pytestmark = pytest.mark.django_db


def _analysed(capture: Any, project: Project, room_type: str | None = None) -> Photo:
    """A photo taken through the real pipeline (enqueue, then analyse with the fake provider)."""
    photo = make_photo(project=project, room_type=room_type)
    with capture(execute=True):
        photo_enqueue(photo=photo)
        assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
    photo.refresh_from_db()
    return photo


def _requested_at(project: Project) -> Any:
    return Project.objects.values_list("inventory_sync_requested_at", flat=True).get(pk=project.pk)


def test_totals_are_sums_over_done_photos_only(django_capture_on_commit_callbacks: Any) -> None:
    project = make_project()
    done = [
        _analysed(django_capture_on_commit_callbacks, project, "kitchen"),
        _analysed(django_capture_on_commit_callbacks, project, "bedroom"),
        _analysed(django_capture_on_commit_callbacks, project, "kitchen"),
        _analysed(django_capture_on_commit_callbacks, project),  # room detected
    ]
    # Photos that are not DONE count for nothing, even with figures left on the row.
    pending = make_photo(project=project, room_type="kitchen")
    failed = make_photo(project=project, room_type="kitchen")
    processing = make_photo(project=project, room_type="garage")
    Photo.objects.filter(pk=pending.pk).update(items_count=50, volume_m3=Decimal("50"))
    Photo.objects.filter(pk=failed.pk).update(
        status=Photo.Status.ERROR, items_count=70, volume_m3=Decimal("70")
    )
    Photo.objects.filter(pk=processing.pk).update(
        status=Photo.Status.PROCESSING, items_count=90, volume_m3=Decimal("90")
    )
    # Another project's DONE photo is not ours.
    _analysed(django_capture_on_commit_callbacks, make_project(), "kitchen")

    snapshot = inventory_sync(project_id=project.pk)

    assert snapshot is not None
    snapshot.refresh_from_db()
    expected_items = sum(p.analysis["totals"]["items"] for p in done)  # type: ignore[index]
    expected_volume = sum(
        (Decimal(str(p.analysis["totals"]["volume_m3"])) for p in done),  # type: ignore[index]
        Decimal("0"),
    )
    assert expected_items > 0
    assert snapshot.total_items == expected_items
    assert snapshot.total_volume == expected_volume
    assert snapshot.photo_count == 4
    assert sum(room["itemsCount"] for room in snapshot.rooms) == expected_items


def test_unlabelled_photos_are_rooms_of_their_own(django_capture_on_commit_callbacks: Any) -> None:
    # Three bedrooms, all `bedroom`, are three rooms: nothing is merged the client did not label.
    project = make_project()
    bedrooms = [_analysed(django_capture_on_commit_callbacks, project, "bedroom") for _ in range(3)]
    kitchen = _analysed(django_capture_on_commit_callbacks, project, "kitchen")
    make_photo(project=project, room_type="office")  # PENDING: no room of its own

    snapshot = inventory_sync(project_id=project.pk)

    assert snapshot is not None
    assert [room["roomType"] for room in snapshot.rooms] == ["bedroom"] * 3 + ["kitchen"]
    by_photo = {room["photos"][0]: room for room in snapshot.rooms}
    for photo in [*bedrooms, kitchen]:
        room = dict(by_photo[str(photo.pk)])
        assert sum(line["quantity"] for line in room.pop("items")) == photo.items_count
        assert room == {
            "room": None,
            "roomType": photo.room_type,
            "itemsCount": photo.items_count,
            "volume_m3": float(photo.volume_m3),
            "photos": [str(photo.pk)],
        }


def test_room_volumes_and_total_volume_have_two_decimals() -> None:
    project = make_project()
    # Figures as stored by the pipeline (two decimals each), chosen so float sums would drift.
    # Each photo shows an item of its own (the catalogue lacks it: the model's volume).
    shots = [("kitchen", "0.10"), ("kitchen", "0.20"), ("cellar", "0.06")] * 3
    for number, (room_type, volume) in enumerate(shots):
        photo = make_photo(project=project, room_type=room_type, room=room_type)
        item = {"key": "other", "name": f"thing {number}", "quantity": 1, "volume_m3": volume}
        store_analysis(
            photo,
            {"items": [item]},
            status=Photo.Status.DONE,
            items_count=1,
            volume_m3=Decimal(volume),
        )

    snapshot = inventory_sync(project_id=project.pk)

    assert snapshot is not None
    rooms = {room["roomType"]: room["volume_m3"] for room in snapshot.rooms}
    assert rooms == {"kitchen": 0.9, "cellar": 0.18}
    snapshot.refresh_from_db()
    assert isinstance(snapshot.total_volume, Decimal)
    assert snapshot.total_volume == Decimal("1.08")
    assert snapshot.total_volume.as_tuple().exponent == -2
    assert (snapshot.total_items, snapshot.photo_count) == (9, 9)


def test_a_done_photo_without_room_type_counts_as_other() -> None:
    project = make_project()
    photo = make_photo(project=project)
    item = {"key": "chair", "name": "Chair", "category": "furniture", "quantity": 2}
    store_analysis(
        photo,
        {"items": [item | {"volume_m3": 0.6}]},
        status=Photo.Status.DONE,
        items_count=2,
        volume_m3=Decimal("0.60"),
    )

    snapshot = inventory_sync(project_id=project.pk)

    assert snapshot is not None
    assert snapshot.rooms == [
        {
            "room": None,
            "roomType": "other",
            "itemsCount": 2,
            "volume_m3": 0.6,
            "photos": [str(photo.pk)],
            "items": [
                item
                | {
                    "unitVolume_m3": 0.3,
                    "volume_m3": 0.6,
                    "fragile": False,
                    "dismantle": False,
                    "photos": [str(photo.pk)],
                    "source": "catalogue",
                    "corrected": False,
                }
            ],
        }
    ]


def test_snapshots_are_kept_as_history_and_the_latest_is_served(
    django_capture_on_commit_callbacks: Any, api: Any, user: Any
) -> None:
    project = make_project(owner=user)
    first_photo = _analysed(django_capture_on_commit_callbacks, project, "kitchen")
    first = inventory_sync(project_id=project.pk)
    second_photo = _analysed(django_capture_on_commit_callbacks, project, "bedroom")

    second = inventory_sync(project_id=project.pk)

    assert first is not None and second is not None
    assert InventorySnapshot.objects.filter(project=project).count() == 2
    first.refresh_from_db()
    assert (first.photo_count, first.total_items) == (1, first_photo.items_count)
    response = api.get(f"/api/projects/{project.pk}/inventory")
    assert response.status_code == 200
    body = response.json()
    assert body["projectId"] == str(project.pk)
    assert body["photoCount"] == 2
    assert body["totalItems"] == first_photo.items_count + second_photo.items_count
    assert body["totalVolume"] == float(first_photo.volume_m3 + second_photo.volume_m3)
    assert {room["roomType"] for room in body["rooms"]} == {"kitchen", "bedroom"}
    assert body["createdAt"].startswith(second.created_at.strftime("%Y-%m-%dT%H:%M:%S"))


def test_inventory_before_any_sync_is_404(api: Any, user: Any) -> None:
    project = make_project(owner=user)

    response = api.get(f"/api/projects/{project.pk}/inventory")

    assert response.status_code == 404
    assert response.json() == {"error": "This project has no inventory yet."}


def test_a_project_without_done_photos_gives_an_empty_snapshot(api: Any, user: Any) -> None:
    project = make_project(owner=user)
    make_photo(project=project, room_type="kitchen")
    failed = make_photo(project=project)
    Photo.objects.filter(pk=failed.pk).update(status=Photo.Status.ERROR)

    snapshot = inventory_sync(project_id=project.pk)

    assert snapshot is not None
    snapshot.refresh_from_db()
    assert (snapshot.total_items, snapshot.total_volume, snapshot.rooms, snapshot.photo_count) == (
        0,
        Decimal("0"),
        [],
        0,
    )
    body = api.get(f"/api/projects/{project.pk}/inventory").json()
    assert (body["totalItems"], body["totalVolume"], body["rooms"], body["photoCount"]) == (
        0,
        0.0,
        [],
        0,
    )


def test_sync_of_a_deleted_project_writes_nothing() -> None:
    project = make_project()
    project_id = project.pk
    project.delete()

    assert inventory_sync(project_id=project_id) is None
    assert not InventorySnapshot.objects.exists()


def test_request_sync_twice_sends_one_message(
    django_capture_on_commit_callbacks: Any, inventory_queue: Any
) -> None:
    project = make_project()

    with django_capture_on_commit_callbacks(execute=True):
        first = inventory_request_sync(project_id=project.pk)
        second = inventory_request_sync(project_id=project.pk)

    assert (first, second) == (True, False)
    messages = inventory_queue.all()
    assert len(messages) == 1
    assert messages[0]["actor_name"] == "sync_inventory"
    assert messages[0]["args"] == [str(project.pk)]
    assert messages[0]["queue_name"] == "inventory-sync.DQ"  # INVENTORY_SYNC_DELAY_MS > 0
    assert _requested_at(project) is not None


def test_a_sync_clears_the_request_so_the_next_one_sends_again(
    django_capture_on_commit_callbacks: Any, inventory_queue: Any
) -> None:
    project = make_project()
    with django_capture_on_commit_callbacks(execute=True):
        assert inventory_request_sync(project_id=project.pk) is True

    inventory_sync(project_id=project.pk)

    assert _requested_at(project) is None
    with django_capture_on_commit_callbacks(execute=True):
        assert inventory_request_sync(project_id=project.pk) is True
        assert inventory_request_sync(project_id=project.pk) is False
    assert [m["args"] for m in inventory_queue.all()] == [[str(project.pk)], [str(project.pk)]]


def test_a_burst_of_done_photos_queues_one_sync(
    django_capture_on_commit_callbacks: Any, inventory_queue: Any, photo_queue: Any
) -> None:
    project = make_project()
    photos = [make_photo(project=project) for _ in range(20)]

    with django_capture_on_commit_callbacks(execute=True):
        for photo in photos:
            photo_enqueue(photo=photo)
        outcomes = [photo_analyze(photo_id=str(p.pk), provider=FakeProvider()) for p in photos]

    assert outcomes == [Outcome.DONE] * 20
    assert len(photo_queue.all()) == 20
    messages = inventory_queue.all()
    assert [m["args"] for m in messages] == [[str(project.pk)]]
    snapshot = inventory_sync(project_id=project.pk)
    assert snapshot is not None and snapshot.photo_count == 20


def test_a_failed_photo_does_not_request_a_sync(
    django_capture_on_commit_callbacks: Any, inventory_queue: Any
) -> None:
    project = make_project()
    photo = make_photo(project=project)
    failing = FakeProvider(fail_rate=1.0, fail_code=ErrorCode.BAD_INPUT)

    with django_capture_on_commit_callbacks(execute=True):
        photo_enqueue(photo=photo)
        assert photo_analyze(photo_id=str(photo.pk), provider=failing) == Outcome.ERROR

    assert inventory_queue.all() == []
    assert _requested_at(project) is None


def test_a_stale_request_is_renewed(
    django_capture_on_commit_callbacks: Any, inventory_queue: Any
) -> None:
    project = make_project()
    stale = timezone.now() - timedelta(minutes=10, seconds=5)
    Project.objects.filter(pk=project.pk).update(inventory_sync_requested_at=stale)

    with django_capture_on_commit_callbacks(execute=True):
        renewed = inventory_request_sync(project_id=project.pk)

    assert renewed is True
    assert _requested_at(project) > stale + timedelta(minutes=10)
    assert [m["args"] for m in inventory_queue.all()] == [[str(project.pk)]]


def test_a_recent_request_is_not_renewed(
    django_capture_on_commit_callbacks: Any, inventory_queue: Any
) -> None:
    project = make_project()
    recent = timezone.now() - timedelta(minutes=9)
    Project.objects.filter(pk=project.pk).update(inventory_sync_requested_at=recent)

    with django_capture_on_commit_callbacks(execute=True):
        assert inventory_request_sync(project_id=project.pk) is False

    assert _requested_at(project) == recent
    assert inventory_queue.all() == []


def test_sync_endpoint_coalesces_and_sends_without_delay(
    django_capture_on_commit_callbacks: Any, api: Any, user: Any, inventory_queue: Any
) -> None:
    project = make_project(owner=user)

    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(f"/api/projects/{project.pk}/inventory/sync")
        second = api.post(f"/api/projects/{project.pk}/inventory/sync")

    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json() == {
        "success": True,
        "status": "enqueued",
        "jobId": f"inventory-{project.pk}",
    }
    assert second.json()["status"] == "already_queued"
    assert [m["args"] for m in inventory_queue.ready()] == [[str(project.pk)]]
    assert inventory_queue.delayed() == []


@pytest.mark.django_db(transaction=True)
def test_a_photo_finished_during_a_sync_gets_a_sync_of_its_own(
    django_capture_on_commit_callbacks: Any, inventory_queue: Any
) -> None:
    project = make_project()
    photo = make_photo(project=project, room_type="kitchen")
    photo_enqueue(photo=photo)
    assert inventory_request_sync(project_id=project.pk) is True  # a sync is already waiting
    in_done_transaction = threading.Event()
    release = threading.Event()

    def hold_the_done_transaction(sender: Any, **kwargs: Any) -> None:
        # Connected after inventory's receiver, so it runs after that one, inside the DONE
        # transaction. A sync request made right there (the bug this test was written for)
        # found the waiting sync's request still set and asked for nothing.
        in_done_transaction.set()
        release.wait(timeout=10)

    def worker() -> None:
        try:
            photo_analyze(photo_id=str(photo.pk), provider=FakeProvider())
        finally:
            connection.close()

    photo_done.connect(hold_the_done_transaction, dispatch_uid="test.hold")
    thread = threading.Thread(target=worker)
    try:
        thread.start()
        assert in_done_transaction.wait(timeout=10)
        snapshot = inventory_sync(project_id=project.pk)  # the waiting sync starts now
        release.set()
        thread.join(timeout=10)
    finally:
        release.set()
        photo_done.disconnect(dispatch_uid="test.hold")
        thread.join(timeout=10)

    assert snapshot is not None and snapshot.photo_count == 0  # the photo was not committed
    assert Photo.objects.get(pk=photo.pk).status == Photo.Status.DONE
    # The contract: a photo finished during a sync gets a sync of its own.
    assert _requested_at(project) is not None


def test_snapshot_rooms_are_stored_compressed_with_lz4(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Migration 0007: each photo id is written once per line it is in; lz4 stores a 10,000-photo
    # project's rooms in an eighth of the bytes, faster than uncompressed (docs/benchmarks.md).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstorage, attcompression FROM pg_attribute"
            " WHERE attrelid = 'inventory_inventorysnapshot'::regclass AND attname = 'rooms'"
        )
        assert cursor.fetchone() == ("x", "l")
    project = make_project()
    photo = _analysed(django_capture_on_commit_callbacks, project, room_type="kitchen")
    snapshot = inventory_sync(project_id=project.pk)
    assert snapshot is not None
    stored = InventorySnapshot.objects.get(pk=snapshot.pk).rooms
    assert stored == snapshot.rooms and stored[0]["photos"] == [str(photo.pk)]


def test_sync_reads_the_photos_from_the_covering_index_alone(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Migration photos/0005: at 50,000 photos the GROUP BY read 10,041 heap pages (42 ms); from
    # the covering index it reads 501 (18 ms). A query or an index that stops matching fails here.
    project = make_project()
    _analysed(django_capture_on_commit_callbacks, project, room_type="kitchen")
    with CaptureQueriesContext(connection) as captured:
        inventory_sync(project_id=project.pk)
    # The rooms' GROUP BY (the item lines' reads their rows, photos.PhotoItem).
    (group_by,) = [
        q["sql"]
        for q in captured.captured_queries
        if "GROUP BY" in q["sql"] and "photos_photoitem" not in q["sql"]
    ]
    with connection.cursor() as cursor:
        # Only an index-only scan left to the planner (the test table is too small for its own
        # choice to mean anything): it must find an index that holds every column the query reads.
        for path in ("seqscan", "bitmapscan", "indexscan"):
            cursor.execute(f"SET LOCAL enable_{path} = off")
        cursor.execute(f"EXPLAIN {group_by}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Only Scan using photo_project_status_cover" in plan, plan


def test_sync_aggregates_the_item_lines_as_their_index_gives_them(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # photos.PhotoItem's index: at 10,000 photos the lines' GROUP BY took 238 ms joined to the
    # photos, 119 ms streamed from the index alone (docs/benchmarks.md).
    project = make_project()
    _analysed(django_capture_on_commit_callbacks, project, room_type="kitchen")
    with CaptureQueriesContext(connection) as captured:
        inventory_sync(project_id=project.pk)
    (group_by,) = [q["sql"] for q in captured.captured_queries if "photos_photoitem" in q["sql"]]
    assert '"photos_photo"' not in group_by and "JOIN" not in group_by
    with connection.cursor() as cursor:
        # No other scan, no sort and no hashing left to the planner: the index must hold every
        # column read and give the rows in the GROUP BY's order.
        for path in ("seqscan", "bitmapscan", "indexscan", "sort", "hashagg"):
            cursor.execute(f"SET LOCAL enable_{path} = off")
        cursor.execute(f"EXPLAIN {group_by}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Only Scan using photoitem_project_room_line" in plan, plan
    assert "Sort" not in plan and "GroupAggregate" in plan, plan
