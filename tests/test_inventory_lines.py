"""Item lines: each room's items merged across the photos that show it (inventory/lines.py)."""

from __future__ import annotations

import sqlite3
import uuid
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from inventory.lines import SQLITE_UUID_TEXT
from inventory.models import InventorySnapshot
from inventory.services import inventory_sync
from photos.models import Photo, Project
from tests.factories import analysis_item, make_photo, make_project, store_analysis

pytestmark = pytest.mark.django_db

LINE_FIELDS = {
    "key",
    "name",
    "category",
    "quantity",
    "unitVolume_m3",
    "volume_m3",
    "fragile",
    "dismantle",
    "photos",
    "source",
    "corrected",
}


def _done(
    project: Project, items: list[dict[str, Any]], *, room: str = "", room_type: str = "living_room"
) -> Photo:
    """A DONE photo whose analysis lists `items`, stored as the pipeline stores it."""
    photo = make_photo(project=project, room=room, room_type=room_type)
    analysis: dict[str, Any] = {
        "items": items,
        "totals": {
            "items": sum(i["quantity"] for i in items),
            "volume_m3": float(sum(Decimal(str(i["volume_m3"])) for i in items)),
        },
    }
    return store_analysis(
        photo,
        analysis,
        status=Photo.Status.DONE,
        items_count=analysis["totals"]["items"],
        volume_m3=Decimal(str(analysis["totals"]["volume_m3"])),
    )


def _lines(snapshot: InventorySnapshot | None, room: int = 0) -> dict[str, dict[str, Any]]:
    assert snapshot is not None
    return {line["key"]: line for line in snapshot.rooms[room]["items"]}


def test_three_photos_of_one_labelled_room_showing_one_sofa_give_one_sofa() -> None:
    project = make_project()
    photos = [
        _done(
            project,
            [analysis_item("sofa_3_seat", 1, 2.0), analysis_item("chair", 2, 0.6)],
            room="Salon",
        ),
        _done(
            project,
            [analysis_item("sofa_3_seat", 1, 2.0), analysis_item("chair", 4, 1.2)],
            room="salon ",
        ),
        _done(project, [analysis_item("sofa_3_seat", 1, 2.0)], room="SALON"),
    ]

    snapshot = inventory_sync(project_id=project.pk)

    assert snapshot is not None and len(snapshot.rooms) == 1
    lines = _lines(snapshot)
    ids = sorted(str(p.pk) for p in photos)
    assert lines["sofa_3_seat"] == {
        "key": "sofa_3_seat",
        "name": "sofa 3 seat",
        "category": "furniture",
        "quantity": 1,
        "unitVolume_m3": 2.0,
        "volume_m3": 2.0,
        "fragile": False,
        "dismantle": False,
        "photos": ids,
        "source": "catalogue",
        "corrected": False,
    }
    # The largest quantity seen in any one photo, not the sum.
    assert (lines["chair"]["quantity"], lines["chair"]["volume_m3"]) == (4, 1.2)
    assert lines["chair"]["photos"] == sorted(str(p.pk) for p in photos[:2])
    room = snapshot.rooms[0]
    assert (room["itemsCount"], room["volume_m3"]) == (5, 3.2)
    assert (snapshot.total_items, snapshot.total_volume) == (5, Decimal("3.20"))


def test_one_photo_counts_each_of_its_items_lines(settings: Any) -> None:
    # Two lines of one key in one photo are one photo's quantity (their sum), before the merge.
    project = make_project()
    _done(project, [analysis_item("chair", 2, 0.6), analysis_item("chair", 1, 0.3)], room="Cuisine")
    _done(project, [analysis_item("chair", 2, 0.6)], room="Cuisine")

    assert _lines(inventory_sync(project_id=project.pk))["chair"]["quantity"] == 3


def test_merge_sum_adds_the_photos_quantities(settings: Any) -> None:
    settings.INVENTORY_MERGE = "sum"
    project = make_project()
    _done(project, [analysis_item("chair", 2, 0.6)], room="Salon")
    _done(project, [analysis_item("chair", 4, 1.2)], room="Salon")

    line = _lines(inventory_sync(project_id=project.pk))["chair"]

    assert (line["quantity"], line["volume_m3"]) == (6, 1.8)


def test_volumes_come_from_the_catalogue_times_the_quantity() -> None:
    # The photo's own figure (an old catalogue, say) is not the line's: the catalogue is.
    project = make_project()
    _done(project, [analysis_item("wardrobe_2_door", 2, 9.99, dismantle=True)], room="Chambre 1")

    line = _lines(inventory_sync(project_id=project.pk))["wardrobe_2_door"]

    assert (line["unitVolume_m3"], line["volume_m3"], line["source"]) == (2.0, 4.0, "catalogue")
    assert line["dismantle"] is True


def test_items_the_catalogue_lacks_merge_by_name_with_the_models_volume() -> None:
    project = make_project()
    first = _done(
        project,
        [analysis_item("other", 1, 3.0, name="Piano à queue", fragile=True, volumeSource="model")],
        room="Salon",
    )
    second = _done(
        project,
        [
            analysis_item("other", 1, 3.0, name="  piano   à QUEUE ", volumeSource="model"),
            analysis_item("other", 2, 0.5, name="Plant", volumeSource="model"),
        ],
        room="Salon",
    )

    snapshot = inventory_sync(project_id=project.pk)

    assert snapshot is not None
    lines = {line["name"].strip().casefold(): line for line in snapshot.rooms[0]["items"]}
    assert len(lines) == 2  # the two pianos are one line, whatever their spelling
    piano = next(line for name, line in lines.items() if name.startswith("piano"))
    assert (piano["quantity"], piano["unitVolume_m3"], piano["volume_m3"]) == (1, 3.0, 3.0)
    assert (piano["source"], piano["fragile"], piano["key"]) == ("model", True, "other")
    assert piano["photos"] == sorted([str(first.pk), str(second.pk)])
    assert (lines["plant"]["quantity"], lines["plant"]["unitVolume_m3"]) == (2, 0.25)


def test_rooms_keep_their_lines_apart() -> None:
    project = make_project()
    _done(project, [analysis_item("chair", 2, 0.6)], room="Cuisine")
    _done(project, [analysis_item("chair", 3, 0.9)], room="Salon")
    alone = _done(project, [analysis_item("chair", 5, 1.5)])
    _done(make_project(), [analysis_item("chair", 9, 2.7)], room="Salon")  # another project

    snapshot = inventory_sync(project_id=project.pk)

    assert snapshot is not None
    assert [(r["room"], r["items"][0]["quantity"]) for r in snapshot.rooms] == [
        ("Cuisine", 2),
        ("Salon", 3),
        (None, 5),
    ]
    assert snapshot.rooms[2]["items"][0]["photos"] == [str(alone.pk)]


def test_unlabelled_photos_keep_the_old_totals() -> None:
    # Each photo a room of its own: the totals are the photos' sums, as before item lines.
    project = make_project()
    photos = [
        _done(
            project,
            [analysis_item("sofa_3_seat", 1, 2.0), analysis_item("chair", 4, 1.2)],
            room_type="bedroom",
        ),
        _done(
            project,
            [analysis_item("sofa_3_seat", 1, 2.0), analysis_item("carton", 12, 0.72)],
            room_type="bedroom",
        ),
        _done(project, [], room_type="bedroom"),
    ]

    snapshot = inventory_sync(project_id=project.pk)

    assert snapshot is not None
    assert snapshot.total_items == sum(p.items_count for p in photos) == 18
    assert snapshot.total_volume == sum(p.volume_m3 for p in photos) == Decimal("5.92")
    assert snapshot.photo_count == 3
    assert sorted((r["itemsCount"], r["volume_m3"]) for r in snapshot.rooms) == sorted(
        (p.items_count, float(p.volume_m3)) for p in photos
    )


def test_the_api_serves_the_lines(api: APIClient, project: Project) -> None:
    photo = _done(project, [analysis_item("mirror", 1, 0.1, fragile=True)], room="Entrée")
    inventory_sync(project_id=project.pk)

    body = api.get(f"/api/projects/{project.pk}/inventory").json()

    (room,) = body["rooms"]
    assert set(room) == {"room", "roomType", "itemsCount", "volume_m3", "photos", "items"}
    (line,) = room["items"]
    assert set(line) == LINE_FIELDS
    assert line["photos"] == [str(photo.pk)]
    assert (line["quantity"], line["fragile"], line["source"]) == (1, True, "catalogue")
    assert (body["totalItems"], body["totalVolume"]) == (1, 0.1)


def test_a_snapshot_from_before_item_lines_is_served_with_none(
    api: APIClient, project: Project
) -> None:
    InventorySnapshot.objects.create(
        project=project,
        total_items=3,
        total_volume=Decimal("1.5"),
        rooms=[{"roomType": "kitchen", "itemsCount": 3, "volume_m3": 1.5, "photos": []}],
        photo_count=0,
    )

    body = api.get(f"/api/projects/{project.pk}/inventory").json()

    assert body["rooms"] == [
        {
            "room": None,
            "roomType": "kitchen",
            "itemsCount": 3,
            "volume_m3": 1.5,
            "photos": [],
            "items": [],
        }
    ]


def test_the_schema_describes_the_lines(api: APIClient) -> None:
    schema = api.get("/api/schema/?format=json").json()

    line = schema["components"]["schemas"]["ItemLine"]["properties"]
    room = schema["components"]["schemas"]["Room"]["properties"]
    assert set(line) == LINE_FIELDS
    assert {"room", "items", "itemsCount", "roomType", "photos", "volume_m3"} <= set(room)


# --- ids as the API writes them -----------------------------------------------------------------


def test_inventory_ids_are_the_photo_apis_ids(api: APIClient, project: Project) -> None:
    labelled = _done(project, [analysis_item("chair", 1, 0.3)], room="Salon")
    alone = _done(project, [analysis_item("desk", 1, 1.0)])
    inventory_sync(project_id=project.pk)

    body = api.get(f"/api/projects/{project.pk}/inventory").json()

    ids = [pid for room in body["rooms"] for pid in room["photos"]]
    ids += [pid for room in body["rooms"] for line in room["items"] for pid in line["photos"]]
    assert len(ids) == 4
    for pid in ids:
        assert pid == str(uuid.UUID(pid))  # hyphens, lower case: not the 32-digit hex form
    api_ids = {api.get(f"/api/photos/{p.pk}").json()["photo"]["id"] for p in (labelled, alone)}
    assert set(ids) == api_ids


def test_sqlite_writes_a_uuid_column_with_hyphens() -> None:
    # `make run`'s database stores a UUID as 32 hex digits; the inventory's SQL must write it
    # as the API does. Checked on SQLite itself, whatever database the suite runs on.
    value = uuid.uuid4()
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE p (id char(32))")
        db.execute("INSERT INTO p VALUES (?)", [value.hex])
        (written,) = db.execute(f"SELECT {SQLITE_UUID_TEXT.format(x='id')} FROM p").fetchone()
    assert written == str(value)
