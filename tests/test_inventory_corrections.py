"""Staff corrections of the inventory's lines (inventory/corrections.py): each kind changes the
API's inventory, bad input changes nothing, and a re-analysis keeps the corrections that apply."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from ai_engine.fake import MODEL, FakeProvider
from ai_engine.prompts import PROMPT_VERSION
from inventory.corrections import CorrectionError, correction_create, line_identity
from inventory.models import InventoryCorrection
from inventory.services import inventory_sync
from photos.lifecycle import photo_enqueue
from photos.models import Photo, Project
from photos.services.analysis import Outcome, photo_analyze
from tests.factories import analysis_item, make_photo, make_project, make_user, store_analysis
from tests.test_inventory_lines import _done

pytestmark = pytest.mark.django_db


def _inventory(api: APIClient, project: Project) -> dict[str, Any]:
    inventory_sync(project_id=project.pk)
    response = api.get(f"/api/projects/{project.pk}/inventory")
    assert response.status_code == 200
    return response.json()


def _by_key(room: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {line_identity(line): line for line in room["items"]}


@pytest.fixture
def salon(project: Project) -> Photo:
    return _done(
        project,
        [
            analysis_item("sofa_3_seat", 1, 2.0),
            analysis_item("chair", 2, 0.6),
            analysis_item("other", 1, 3.0, name="Piano à queue", volumeSource="model"),
        ],
        room="Salon",
    )


@pytest.fixture
def staff() -> Any:
    return make_user(staff=True, is_superuser=True)


def test_every_line_says_it_is_not_corrected_until_staff_correct_it(
    api: APIClient, project: Project, salon: Photo
) -> None:
    room = _inventory(api, project)["rooms"][0]

    assert [line["corrected"] for line in room["items"]] == [False, False, False]


def test_a_quantity_change_changes_the_apis_inventory(
    api: APIClient, project: Project, salon: Photo, staff: Any
) -> None:
    correction = correction_create(
        project=project,
        room_group="salon",
        action="set_quantity",
        line_key="chair",
        quantity=4,
        user=staff,
    )

    inventory = _inventory(api, project)
    lines = _by_key(inventory["rooms"][0])
    assert (lines["chair"]["quantity"], lines["chair"]["volume_m3"]) == (4, 1.2)
    assert lines["chair"]["corrected"] is True
    assert lines["sofa_3_seat"]["corrected"] is False
    assert inventory["rooms"][0]["itemsCount"] == 1 + 4 + 1
    assert (inventory["totalItems"], inventory["totalVolume"]) == (6, 6.2)
    # Stored as data of its own: who, before → after; the model's answer is untouched.
    correction.refresh_from_db()
    assert correction.created_by == staff and correction.applies is True
    assert correction.before is not None and correction.before["quantity"] == 2
    assert correction.after is not None and correction.after["quantity"] == 4
    assert (correction.ai_volume_m3, correction.room_ai_volume_m3) == (
        Decimal("0.60"),
        Decimal("5.60"),
    )
    assert correction.room_volume_m3 == Decimal("6.20")
    salon.refresh_from_db()
    assert salon.analysis is not None and salon.analysis["items"][1]["quantity"] == 2


def test_the_latest_quantity_change_wins(api: APIClient, project: Project, salon: Photo) -> None:
    for quantity in (5, 3):
        correction_create(
            project=project,
            room_group="salon",
            action="set_quantity",
            line_key="chair",
            quantity=quantity,
        )

    assert _by_key(_inventory(api, project)["rooms"][0])["chair"]["quantity"] == 3


def test_a_key_change_gives_the_line_the_catalogues_figures(
    api: APIClient, project: Project, salon: Photo
) -> None:
    # The piano the catalogue lacks (a model line, named by its normalised name) is a bookcase.
    correction_create(
        project=project,
        room_group="salon",
        action="change_key",
        line_key="piano à queue",
        new_key="bookcase",
    )

    lines = _by_key(_inventory(api, project)["rooms"][0])
    assert "piano à queue" not in lines
    assert {
        k: lines["bookcase"][k] for k in ("name", "quantity", "unitVolume_m3", "volume_m3")
    } == {
        "name": "Bookcase",
        "quantity": 1,
        "unitVolume_m3": 1.0,
        "volume_m3": 1.0,
    }
    assert (lines["bookcase"]["source"], lines["bookcase"]["dismantle"]) == ("catalogue", True)
    assert lines["bookcase"]["photos"] == [str(salon.pk)] and lines["bookcase"]["corrected"]


def test_a_key_change_onto_a_line_of_the_room_merges_them(
    api: APIClient, project: Project, salon: Photo
) -> None:
    # Chairs and (mistaken) stools seen from two angles are the same furniture: the larger count.
    correction_create(
        project=project,
        room_group="salon",
        action="set_quantity",
        line_key="sofa_3_seat",
        quantity=3,
    )
    correction_create(
        project=project, room_group="salon", action="change_key", line_key="sofa_3_seat",
        new_key="chair",
    )  # fmt: skip

    lines = _by_key(_inventory(api, project)["rooms"][0])
    assert "sofa_3_seat" not in lines
    assert (lines["chair"]["quantity"], lines["chair"]["volume_m3"]) == (3, 0.9)


def test_a_removed_line_leaves_the_inventory(
    api: APIClient, project: Project, salon: Photo
) -> None:
    correction_create(project=project, room_group="salon", action="remove", line_key="chair")

    inventory = _inventory(api, project)
    assert set(_by_key(inventory["rooms"][0])) == {"sofa_3_seat", "piano à queue"}
    assert inventory["totalVolume"] == 5.0


def test_an_added_line_is_in_the_inventory_with_no_photos(
    api: APIClient, project: Project, salon: Photo
) -> None:
    correction_create(
        project=project,
        room_group="salon",
        action="add",
        new_key="fridge",
        quantity=2,
        photo=salon,
    )

    inventory = _inventory(api, project)
    fridge = _by_key(inventory["rooms"][0])["fridge"]
    assert fridge == {
        "key": "fridge",
        "name": "Fridge",
        "category": "appliance",
        "quantity": 2,
        "unitVolume_m3": 1.5,
        "volume_m3": 3.0,
        "fragile": False,
        "dismantle": False,
        "photos": [],
        "source": "catalogue",
        "corrected": True,
    }
    assert inventory["totalVolume"] == 8.6


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"action": "set_quantity", "line_key": "chair", "quantity": -1}, "quantity", "0 or more"),
        ({"action": "set_quantity", "line_key": "chair", "quantity": None}, "quantity", "0 or"),
        ({"action": "set_quantity", "line_key": "stool", "quantity": 1}, "line", "no such line"),
        ({"action": "remove", "line_key": ""}, "line", "no such line"),
        ({"action": "change_key", "line_key": "chair", "new_key": "stool"}, "key", "catalogue"),
        ({"action": "change_key", "line_key": "chair", "new_key": "chair"}, "key", "already"),
        ({"action": "add", "new_key": "chair", "quantity": 1}, "key", "already has"),
        ({"action": "add", "new_key": "fridge", "quantity": 0}, "quantity", "at least 1"),
        ({"action": "add", "new_key": "nope", "quantity": 1}, "key", "catalogue"),
        ({"action": "undo", "line_key": "chair"}, "action", "Unknown"),
        ({"action": "remove", "line_key": "chair", "room_group": "cuisine"}, "room", "no such"),
    ],
)
def test_bad_corrections_are_refused_and_change_nothing(
    project: Project, salon: Photo, fields: dict[str, Any], field: str, message: str
) -> None:
    before = inventory_sync(project_id=project.pk)

    with pytest.raises(CorrectionError) as raised:
        correction_create(project=project, **{"room_group": "salon", **fields})

    assert raised.value.field == field and message in str(raised.value)
    assert not InventoryCorrection.objects.exists()
    after = inventory_sync(project_id=project.pk)
    assert before is not None and after is not None and after.rooms == before.rooms


def test_corrections_of_a_line_the_photos_no_longer_show_are_kept_but_not_applied(
    api: APIClient, project: Project, salon: Photo
) -> None:
    removed = correction_create(
        project=project, room_group="salon", action="remove", line_key="chair"
    )
    added = correction_create(
        project=project, room_group="salon", action="add", new_key="mirror", quantity=1
    )
    # The photo now shows no chair, and a mirror: the removal no longer applies; the added
    # mirror and the one seen are the same mirror.
    store_analysis(
        salon, {"items": [analysis_item("sofa_3_seat", 1, 2.0), analysis_item("mirror", 1, 0.1)]}
    )

    lines = _by_key(_inventory(api, project)["rooms"][0])

    assert set(lines) == {"sofa_3_seat", "mirror"}
    assert (lines["mirror"]["quantity"], lines["mirror"]["corrected"]) == (1, True)
    assert lines["mirror"]["photos"] == [str(salon.pk)]
    removed.refresh_from_db()
    added.refresh_from_db()
    assert (removed.applies, added.applies) == (False, True)


def test_an_added_line_outlives_its_rooms_photos(
    api: APIClient, project: Project, salon: Photo
) -> None:
    correction_create(
        project=project, room_group="salon", action="add", new_key="fridge", quantity=1
    )
    store_analysis(salon, salon.analysis, status=Photo.Status.ERROR)  # its re-analysis failed

    rooms = _inventory(api, project)["rooms"]

    assert [(r["room"], r["roomType"], r["photos"], r["itemsCount"]) for r in rooms] == [
        ("Salon", "living_room", [], 1)
    ]


def _analysed(capture: Any, photo: Photo, *, room_type: str, force: bool = False) -> Photo:
    Photo.objects.filter(pk=photo.pk).update(room_type=room_type)
    with capture(execute=True):
        photo_enqueue(photo=photo, force=force)
        assert photo_analyze(photo_id=str(photo.pk), provider=FakeProvider()) == Outcome.DONE
    photo.refresh_from_db()
    return photo


def _keys(photo: Photo) -> list[str]:
    assert photo.analysis is not None
    return [item["key"] for item in photo.analysis["items"]]


def test_a_reanalysis_keeps_the_corrections_that_still_apply(
    django_capture_on_commit_callbacks: Any, api: APIClient, project: Project
) -> None:
    capture = django_capture_on_commit_callbacks
    # This image's kitchen has a washing machine, a fridge and a cooker; re-analysed as a
    # bathroom, only the washing machine.
    photo = _analysed(
        capture, make_photo(project=project, room="Cuisine", seed=3), room_type="kitchen"
    )
    assert _keys(photo)[:3] == ["fridge", "cooker", "washing_machine"]
    kept = correction_create(
        project=project, room_group="cuisine", action="set_quantity",
        line_key="washing_machine", quantity=3,
    )  # fmt: skip
    lost = correction_create(
        project=project, room_group="cuisine", action="set_quantity", line_key="fridge",
        quantity=2,
    )  # fmt: skip
    assert (kept.provider, kept.model, kept.prompt_version) == ("fake", MODEL, PROMPT_VERSION)

    photo = _analysed(capture, photo, room_type="bathroom", force=True)
    assert "washing_machine" in _keys(photo) and "fridge" not in _keys(photo)

    lines = _by_key(_inventory(api, project)["rooms"][0])
    assert (lines["washing_machine"]["quantity"], lines["washing_machine"]["corrected"]) == (
        3,
        True,
    )
    assert "fridge" not in lines
    kept.refresh_from_db()
    lost.refresh_from_db()
    assert (kept.applies, lost.applies) == (True, False)


def test_an_unlabelled_photos_room_is_corrected_by_the_photos_id(
    api: APIClient, project: Project
) -> None:
    alone = _done(project, [analysis_item("chair", 2, 0.6)])

    correction_create(
        project=project, room_group=str(alone.pk), action="set_quantity", line_key="chair",
        quantity=1, photo=alone,
    )  # fmt: skip

    assert _inventory(api, project)["rooms"][0]["items"][0]["quantity"] == 1
    with pytest.raises(CorrectionError):  # another project's photo is no room of this one
        other = _done(make_project(), [analysis_item("chair", 2, 0.6)])
        correction_create(
            project=project, room_group=str(other.pk), action="remove", line_key="chair"
        )


def test_the_schema_describes_the_corrected_flag(api: APIClient) -> None:
    schema = api.get("/api/schema/?format=json").json()

    corrected = schema["components"]["schemas"]["ItemLine"]["properties"]["corrected"]

    assert corrected["type"] == "boolean" and "staff correction" in corrected["description"]


def test_with_merge_sum_a_key_change_adds_up_and_an_added_line_seen_later_does_not(
    settings: Any, api: APIClient, project: Project, salon: Photo
) -> None:
    settings.INVENTORY_MERGE = "sum"
    correction_create(
        project=project, room_group="salon", action="change_key", line_key="sofa_3_seat",
        new_key="chair",
    )  # fmt: skip
    correction_create(project=project, room_group="salon", action="add", new_key="desk", quantity=1)
    # The photo shows the desk too now: one desk, not two.
    store_analysis(
        salon,
        {
            "items": [
                analysis_item("sofa_3_seat", 1, 2.0),
                analysis_item("chair", 2, 0.6),
                analysis_item("desk", 1, 1.0),
            ]
        },
    )

    lines = _by_key(_inventory(api, project)["rooms"][0])

    assert (lines["chair"]["quantity"], lines["desk"]["quantity"]) == (3, 1)
