"""A DONE photo's item rows (photos/items.py): written with the DONE, read by the inventory."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ai_engine.fake import FakeProvider
from inventory.lines import inventory_lines
from inventory.models import VolumeCatalogueEntry
from inventory.services import inventory_sync
from photos.items import photo_item_rows, photo_items_backfill
from photos.lifecycle import Claim, photo_claim, photo_enqueue, photo_store_done
from photos.models import Photo, PhotoItem
from photos.services.analysis import Outcome, photo_analyze
from tests.factories import analysis_item, make_photo, make_project, store_analysis

pytestmark = pytest.mark.django_db


def _rows(photo: Photo) -> list[tuple[Any, ...]]:
    return sorted(
        PhotoItem.objects.filter(photo=photo).values_list(
            "line_key", "by_name", "quantity", "volume_m3", "project_id"
        )
    )


def _analysed(capture: Any, photo: Photo, *, force: bool = False) -> Photo:
    with capture(execute=True):
        photo_enqueue(photo=photo, force=force)
    assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
    photo.refresh_from_db()
    return photo


def test_a_done_photo_writes_its_item_rows_and_a_reanalysis_replaces_them(
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = _analysed(django_capture_on_commit_callbacks, make_photo(room_type="kitchen"))
    assert photo.analysis is not None
    items = photo.analysis["items"]
    first = set(PhotoItem.objects.filter(photo=photo).values_list("pk", flat=True))
    assert first and _rows(photo) == sorted(
        (i["key"], False, i["quantity"], Decimal(str(i["volume_m3"])), photo.project_id)
        for i in items
    )

    _analysed(django_capture_on_commit_callbacks, photo, force=True)

    again = set(PhotoItem.objects.filter(photo=photo).values_list("pk", flat=True))
    assert len(again) == len(first) and not again & first  # replaced, not added to


def test_a_photos_items_of_one_line_are_one_row() -> None:
    photo = make_photo()
    items = [
        analysis_item("chair", 2, 0.6, name="Chair"),
        analysis_item("chair", 1, 0.3, name="Dining chair", fragile=True),
        analysis_item("other", 1, 3.0, name="Piano  à queue", volumeSource="model"),
        analysis_item("other", 1, 3.0, name="piano à QUEUE", volumeSource="model"),
        analysis_item("other", 2, 0.5, name="Plant", volumeSource="model"),
    ]

    store_analysis(photo, {"items": items}, status=Photo.Status.DONE)

    rows = {r.line_key: r for r in PhotoItem.objects.filter(photo=photo)}
    assert set(rows) == {"chair", "piano à queue", "plant"}
    chair = rows["chair"]
    assert (chair.by_name, chair.quantity, chair.volume_m3) == (False, 3, Decimal("0.900"))
    assert (chair.name, chair.fragile, chair.dismantle) == ("Chair", True, False)
    assert (rows["piano à queue"].by_name, rows["piano à queue"].quantity) == (True, 2)


@pytest.mark.parametrize(
    "analysis",
    [None, {}, {"items": "x"}, {"items": {"a": 1}}, {"items": [1, "x", None]}],
)
def test_an_analysis_without_a_list_of_items_gives_no_rows(analysis: Any) -> None:
    assert (
        photo_item_rows(
            PhotoItem, photo_id=1, project_id=1, room="1", analysis=analysis, catalogued={}
        )
        == []
    )


def test_odd_item_fields_count_as_none_rather_than_fail() -> None:
    item = {"key": 3, "name": ["x"], "quantity": "lots", "volume_m3": "NaN", "fragile": "yes"}

    (row,) = photo_item_rows(
        PhotoItem,
        photo_id=1,
        project_id=1,
        room="1",
        analysis={"items": [item]},
        catalogued={"3"},
    )

    assert (row.line_key, row.by_name, row.key, row.name) == ("", True, None, None)
    assert (row.quantity, row.volume_m3, row.fragile) == (0, Decimal("0"), False)


def test_the_backfill_gives_the_inventory_the_rows_give() -> None:
    project = make_project()
    photos = [
        store_analysis(
            make_photo(project=project, room="Salon"),
            {"items": [analysis_item("sofa_3_seat", 1, 2.0), analysis_item("chair", 2, 0.6)]},
            status=Photo.Status.DONE,
        ),
        store_analysis(
            make_photo(project=project, room="salon"),
            {
                "items": [
                    analysis_item("chair", 4, 1.2),
                    analysis_item("other", 1, 3.0, name="Piano", volumeSource="model"),
                ]
            },
            status=Photo.Status.DONE,
        ),
        store_analysis(
            make_photo(project=project),
            {"items": [analysis_item("desk", 1, 1.0)]},
            status=Photo.Status.DONE,
        ),
    ]
    pending = store_analysis(
        make_photo(project=project), {"items": [analysis_item("desk", 1, 1.0)]}
    )
    expected = inventory_lines(project_id=project.pk)
    PhotoItem.objects.all().delete()  # as before the table: the analyses alone

    done = photo_items_backfill(
        catalogued=set(VolumeCatalogueEntry.objects.values_list("key", flat=True))
    )

    assert done == len(photos)
    assert not PhotoItem.objects.filter(photo=pending).exists()
    assert inventory_lines(project_id=project.pk) == expected
    assert photo_items_backfill(catalogued=set()) == 0  # photos with rows are left alone


def test_a_room_label_changed_in_the_admin_moves_the_photos_lines() -> None:
    project = make_project()
    kept = store_analysis(
        make_photo(project=project, room="Salon"),
        {"items": [analysis_item("chair", 2, 0.6)]},
        status=Photo.Status.DONE,
    )
    moved = store_analysis(
        make_photo(project=project, room="Salon"),
        {"items": [analysis_item("desk", 1, 1.0)]},
        status=Photo.Status.DONE,
    )
    moved.room_label = "Bureau"
    moved.save(update_fields=["room_label"])  # as the admin's change form saves it

    snapshot = inventory_sync(project_id=project.pk)

    assert snapshot is not None
    rooms = {room["room"]: room for room in snapshot.rooms}
    assert [line["key"] for line in rooms["Salon"]["items"]] == ["chair"]
    assert [line["key"] for line in rooms["Bureau"]["items"]] == ["desk"]
    assert rooms["Bureau"]["items"][0]["photos"] == [str(moved.pk)]
    assert rooms["Salon"]["photos"] == [str(kept.pk)]


def test_a_forced_reanalysis_takes_the_photo_out_of_the_lines_until_done_again() -> None:
    project = make_project()
    photo = store_analysis(
        make_photo(project=project, room="Salon"),
        {"items": [analysis_item("chair", 2, 0.6)]},
        status=Photo.Status.DONE,
    )
    photo_enqueue(photo=photo, force=True)
    assert inventory_lines(project_id=project.pk)  # still DONE until a worker takes it

    claim = photo_claim(photo_id=str(photo.pk))

    assert isinstance(claim, Claim)
    assert inventory_lines(project_id=project.pk) == {}
    assert photo_store_done(claim=claim, analysis=_analysis("desk"), room_type="office")
    assert [line["key"] for line in inventory_lines(project_id=project.pk)["salon"]] == ["desk"]


def test_a_done_photo_queued_again_with_a_new_room_moves_its_lines_there() -> None:
    project = make_project()
    photo = store_analysis(
        make_photo(project=project, room="Salon"),
        {"items": [analysis_item("chair", 2, 0.6)]},
        status=Photo.Status.DONE,
    )

    photo_enqueue(photo=photo, force=True, room="Chambre 2")

    assert set(inventory_lines(project_id=project.pk)) == {"chambre 2"}
    snapshot = inventory_sync(project_id=project.pk)
    assert snapshot is not None
    assert [(room["room"], room["itemsCount"]) for room in snapshot.rooms] == [("Chambre 2", 2)]


def test_a_photo_relabelled_while_it_is_analysed_gets_its_lines_in_the_new_room() -> None:
    project = make_project()
    photo = make_photo(project=project, room="Salon")
    photo_enqueue(photo=photo)
    claim = photo_claim(photo_id=str(photo.pk))
    assert isinstance(claim, Claim)
    photo.room_label = ""  # staff clear the label while the worker waits on the provider
    photo.save(update_fields=["room_label"])

    assert photo_store_done(claim=claim, analysis=_analysis("desk"), room_type="office")

    assert set(inventory_lines(project_id=project.pk)) == {str(photo.pk)}


def _analysis(key: str) -> dict[str, Any]:
    return {"items": [analysis_item(key, 1, 1.0)], "totals": {"items": 1, "volume_m3": 1.0}}


def test_the_catalogue_of_the_sync_prices_the_lines() -> None:
    project = make_project()
    store_analysis(
        make_photo(project=project, room="Salon"),
        {"items": [analysis_item("chair", 2, 0.6)]},
        status=Photo.Status.DONE,
    )
    VolumeCatalogueEntry.objects.filter(key="chair").update(volume_m3=Decimal("0.5"))

    (line,) = inventory_lines(project_id=project.pk)["salon"]

    assert (line["unitVolume_m3"], line["volume_m3"], line["source"]) == (0.5, 1.0, "catalogue")
    VolumeCatalogueEntry.objects.filter(key="chair").delete()
    (line,) = inventory_lines(project_id=project.pk)["salon"]
    assert (line["unitVolume_m3"], line["volume_m3"], line["source"]) == (0.3, 0.6, "model")
