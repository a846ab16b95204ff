"""The cube sheet (inventory/cubesheet.py): the latest snapshot's rooms and item lines as CSV and
PDF, through the API and the admin, in French and English. The PDF's text is read back with
pypdf, the CSV's with the csv module."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation
from django.utils.formats import date_format
from pypdf import PdfReader
from rest_framework.test import APIClient

from inventory.models import InventorySnapshot
from inventory.services import inventory_sync
from photos.models import Photo, Project
from tests.factories import (
    analysis_item,
    make_photo,
    make_project,
    make_token,
    make_user,
    store_analysis,
)

pytestmark = pytest.mark.django_db

NAME = "Déménagement Müller"
CYRILLIC = "Спальня"  # "bedroom"
CJK = "花瓶"  # "vase": DejaVu Sans has no glyph for it
PDF_GAP = "\ufffd\ufffd"  # how the PDF shows it


@pytest.fixture(autouse=True)
def _back_to_the_default_language() -> Iterator[None]:
    # LocaleMiddleware activates a language in this thread; later tests must not inherit it.
    yield
    translation.deactivate()


def _done(project: Project, items: list[dict[str, Any]], *, room: str, room_type: str) -> Photo:
    """A DONE photo whose analysis lists `items`, stored as the pipeline stores it."""
    photo = make_photo(project=project, room=room, room_type=room_type)
    total = float(sum(Decimal(str(i["volume_m3"])) for i in items))
    return store_analysis(
        photo,
        {"items": items, "totals": {"items": len(items), "volume_m3": total}},
        status=Photo.Status.DONE,
        items_count=sum(i["quantity"] for i in items),
        volume_m3=Decimal(str(total)),
    )


@pytest.fixture
def owner() -> Any:
    return make_user()


@pytest.fixture
def api(owner: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {make_token(owner)}")
    return client


@pytest.fixture
def snapshot(owner: Any) -> InventorySnapshot:
    """A synced inventory: a labelled living room seen in two photos, a bedroom labelled in
    Cyrillic, two unlabelled bedrooms; catalogue items, an item the catalogue lacks (named in
    Chinese), fragile and to-dismantle lines."""
    project = make_project(owner=owner, name=NAME)
    sofa = analysis_item("sofa_3_seat", 1, 2.0)
    table = analysis_item("coffee_table", 1, 0.4, fragile=True)
    _done(project, [sofa, table], room="Salon", room_type="living_room")
    _done(project, [sofa], room="Salon", room_type="living_room")
    _done(
        project,
        [
            analysis_item("wardrobe_2_door", 2, 4.0, dismantle=True),
            analysis_item("ming_vase", 3, 0.06, name=CJK, fragile=True, volumeSource="model"),
        ],
        room=CYRILLIC,
        room_type="bedroom",
    )
    _done(
        project, [analysis_item("single_bed", 1, 1.0, dismantle=True)], room="", room_type="bedroom"
    )
    _done(
        project, [analysis_item("single_bed", 2, 2.0, dismantle=True)], room="", room_type="bedroom"
    )
    result = inventory_sync(project_id=project.pk)
    assert result is not None
    return result


def _url(snapshot: InventorySnapshot, fmt: str) -> str:
    return f"/api/projects/{snapshot.project_id}/inventory.{fmt}"


def _pdf_text(content: bytes) -> str:
    """The PDF's text, every run of whitespace one space."""
    assert content.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(content))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def _csv_rows(content: bytes, delimiter: str) -> list[list[str]]:
    assert content.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig")), delimiter=delimiter))


def _number(value: Any, places: int, decimal: str) -> str:
    return f"{Decimal(str(value)):.{places}f}".replace(".", decimal)


def _date(snapshot: InventorySnapshot, language: str) -> str:
    with translation.override(language):
        return date_format(timezone.localtime(snapshot.created_at), "DATETIME_FORMAT")


def _lines(snapshot: InventorySnapshot) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(room, line) for room in snapshot.rooms for line in room["items"]]


# --- the PDF --------------------------------------------------------------------------------------


def test_the_pdf_in_french_lists_each_rooms_lines_marks_and_totals(
    api: APIClient, snapshot: InventorySnapshot
) -> None:
    response = api.get(_url(snapshot, "pdf"), HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Language"] == "fr"
    day = f"{snapshot.created_at:%Y-%m-%d}"
    assert response["Content-Disposition"] == (
        f'inline; filename="fiche-de-cubage-demenagement-muller-{day}.pdf"'
    )
    text = _pdf_text(response.content)
    assert "Fiche de cubage" in text
    assert f"Dossier : {NAME}" in text
    assert f"Date : {_date(snapshot, 'fr')}" in text
    # Rooms: by label (the type in brackets when it says more), then the unlabelled photos.
    assert [room["room"] for room in snapshot.rooms] == ["Salon", CYRILLIC, None, None]
    positions = [
        text.index(heading)
        for heading in ("Salon Article", f"{CYRILLIC} (Chambre)", "Chambre 1", "Chambre 2")
    ]
    assert positions == sorted(positions)
    # Lines: the catalogue's French name, quantity, unit and total volume with a decimal comma.
    assert "Canapé 3 places 1 2,000 2,00" in text  # one sofa, seen in two photos
    assert "Table basse 1 0,400 0,40 Fragile" in text
    assert "Armoire 2 portes 2 2,000 4,00 À démonter" in text
    # The catalogue lacks the vase: the model's volume, marked; its Chinese name shown missing.
    assert f"{PDF_GAP} 3 0,020 0,06 Fragile, Volume estimé" in text
    assert CJK not in text
    for _room, line in _lines(snapshot):
        assert f"{line['quantity']} {_number(line['unitVolume_m3'], 3, ',')}" in text
    for room in snapshot.rooms:
        total = _number(room["volume_m3"], 2, ",")
        assert f"Total de la pièce {room['itemsCount']} {total}" in text
    assert snapshot.total_items == 10
    total = _number(snapshot.total_volume, 2, ",")
    assert f"Total : {snapshot.total_items} objets, {total} m³" in text
    assert "Corrigé" not in text  # no line of this snapshot has a correction
    assert "Page 1 sur 1" in text


def test_the_pdf_in_english_with_lang_whatever_the_browser_says(
    api: APIClient, snapshot: InventorySnapshot
) -> None:
    response = api.get(_url(snapshot, "pdf"), {"lang": "en"}, HTTP_ACCEPT_LANGUAGE="fr")

    assert response.status_code == 200
    assert response["Content-Language"] == "en"
    assert "cube-sheet-demenagement-muller-" in response["Content-Disposition"]
    text = _pdf_text(response.content)
    assert "Cube sheet" in text
    assert f"Project: {NAME}" in text
    assert f"Date: {_date(snapshot, 'en')}" in text
    assert "Salon (Living room)" in text
    assert f"{CYRILLIC} (Bedroom)" in text
    assert "Bedroom 1" in text and "Bedroom 2" in text
    assert "3-seat sofa 1 2.000 2.00" in text
    assert "Two-door wardrobe 2 2.000 4.00 To dismantle" in text
    assert f"{PDF_GAP} 3 0.020 0.06 Fragile, Estimated volume" in text
    assert f"Total: {snapshot.total_items} items, {snapshot.total_volume:.2f} m³" in text
    assert "Page 1 of 1" in text


def test_a_long_sheet_runs_over_pages_with_the_headings_and_page_numbers(
    api: APIClient, owner: Any
) -> None:
    project = make_project(owner=owner, name="Big move")
    for number in range(30):
        items = [analysis_item(f"box_{number}_{i}", i + 1, 0.1 * (i + 1)) for i in range(4)]
        _done(project, items, room=f"Room {number}", room_type="other")
    snapshot = inventory_sync(project_id=project.pk)
    assert snapshot is not None

    response = api.get(_url(snapshot, "pdf"), {"lang": "en"})

    reader = PdfReader(io.BytesIO(response.content))
    pages = len(reader.pages)
    assert pages > 1
    for number, page in enumerate(reader.pages, start=1):
        text = " ".join(page.extract_text().split())
        assert f"Page {number} of {pages}" in text
        assert "Item Quantity Unit volume (m³) Volume (m³) Marks" in text
    text = _pdf_text(response.content)
    assert all(f"Room {number} (Other)" in text for number in range(30))


def test_a_room_longer_than_a_page_is_named_again_on_the_next(api: APIClient, owner: Any) -> None:
    project = make_project(owner=owner, name="Library")
    books = [analysis_item(f"box_of_books_{i}", 1, 0.1) for i in range(90)]
    _done(project, books, room="Bibliothèque", room_type="office")
    snapshot = inventory_sync(project_id=project.pk)
    assert snapshot is not None

    response = api.get(_url(snapshot, "pdf"), {"lang": "fr"})

    pages = [
        " ".join(page.extract_text().split())
        for page in PdfReader(io.BytesIO(response.content)).pages
    ]
    assert len(pages) > 1
    assert "Bibliothèque (Bureau) Article Quantité" in pages[0]
    for page in pages[1:]:
        assert page.startswith("Bibliothèque (Bureau) (suite) Article Quantité")
    listed = re.findall(r"box of books \d+", " ".join(pages))
    assert sorted(listed) == sorted(line["name"] for line in snapshot.rooms[0]["items"])


def test_the_page_count_placeholder_of_the_pdf_library_stays_text_in_a_name(
    api: APIClient, owner: Any
) -> None:
    project = make_project(owner=owner, name="Move {nb}")
    _done(project, [analysis_item("chair", 1, 0.3)], room="Kitchen {nb}", room_type="kitchen")
    snapshot = inventory_sync(project_id=project.pk)
    assert snapshot is not None

    text = _pdf_text(api.get(_url(snapshot, "pdf"), {"lang": "en"}).content)

    assert "Project: Move {nb}" in text
    assert "Kitchen {nb}" in text


def test_a_snapshot_from_before_item_lines_gives_a_sheet_of_room_totals(
    api: APIClient, owner: Any
) -> None:
    project = make_project(owner=owner, name="Old")
    InventorySnapshot.objects.create(
        project=project,
        total_items=14,
        total_volume=Decimal("6.30"),
        rooms=[{"roomType": "living_room", "itemsCount": 14, "volume_m3": 6.3, "photos": []}],
        photo_count=1,
    )

    pdf = _pdf_text(api.get(f"/api/projects/{project.pk}/inventory.pdf", {"lang": "en"}).content)
    rows = _csv_rows(
        api.get(f"/api/projects/{project.pk}/inventory.csv", {"lang": "en"}).content, ","
    )

    assert "Living room" in pdf
    assert "No item lines." in pdf
    assert "Room total 14 6.30" in pdf
    assert ["Living room", "Living room", "Room total", "14", "", "6.30", "", "", "", ""] in rows


# --- the CSV --------------------------------------------------------------------------------------


def test_the_csv_in_french_is_utf8_with_semicolons_and_decimal_commas(
    api: APIClient, snapshot: InventorySnapshot
) -> None:
    response = api.get(_url(snapshot, "csv"), {"lang": "fr"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    day = f"{snapshot.created_at:%Y-%m-%d}"
    assert response["Content-Disposition"] == (
        f'attachment; filename="fiche-de-cubage-demenagement-muller-{day}.csv"'
    )
    rows = _csv_rows(response.content, ";")
    assert rows[0] == ["Dossier", NAME]
    assert rows[1] == ["Date", _date(snapshot, "fr")]
    assert rows[2] == []
    marks = ["Fragile", "À démonter", "Corrigé", "Volume estimé"]
    header = ["Pièce", "Type de pièce", "Article", "Quantité", "Volume unitaire (m³)"]
    assert rows[3] == [*header, "Volume (m³)", *marks]
    body = rows[4:]
    assert ["Salon", "Salon", "Canapé 3 places", "1", "2,000", "2,00", "", "", "", ""] in body
    assert [CYRILLIC, "Chambre", CJK, "3", "0,020", "0,06", "oui", "", "", "oui"] in body
    # The two unlabelled bedrooms, numbered in the inventory's order.
    two_beds = 1 + [room["items"][0]["quantity"] for room in snapshot.rooms[2:]].index(2)
    bed = ["Lit simple", "2", "1,000", "2,00", "", "oui", "", ""]
    assert [f"Chambre {two_beds}", "Chambre", *bed] in body
    # Every line of the snapshot, in its order, each room closed by its total.
    room_total = "Total de la pièce"
    expected: list[list[str]] = []
    for room, name in zip(
        snapshot.rooms, ["Salon", CYRILLIC, "Chambre 1", "Chambre 2"], strict=True
    ):
        for line in room["items"]:
            unit, volume = line["unitVolume_m3"], line["volume_m3"]
            expected.append(
                [name, str(line["quantity"]), _number(unit, 3, ","), _number(volume, 2, ",")]
            )
        expected.append(
            [name, room_total, str(room["itemsCount"]), _number(room["volume_m3"], 2, ",")]
        )
    got = [
        [row[0], row[2], row[3], row[5]] if row[2] == room_total else [row[0], *row[3:6]]
        for row in body[:-1]
    ]
    assert got == expected
    assert body[-1] == [
        "Total",
        "",
        "",
        str(snapshot.total_items),
        "",
        _number(snapshot.total_volume, 2, ","),
        *[""] * 4,
    ]


def test_the_csv_in_english_uses_commas_and_decimal_points(
    api: APIClient, snapshot: InventorySnapshot
) -> None:
    response = api.get(_url(snapshot, "csv"), HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.8")

    rows = _csv_rows(response.content, ",")
    assert rows[0] == ["Project", NAME]
    assert rows[3][:4] == ["Room", "Room type", "Item", "Quantity"]
    assert rows[3][6:] == ["Fragile", "To dismantle", "Corrected", "Estimated volume"]
    assert ["Salon", "Living room", "3-seat sofa", "1", "2.000", "2.00", "", "", "", ""] in rows
    assert rows[-1][:6] == [
        "Total",
        "",
        "",
        str(snapshot.total_items),
        "",
        f"{snapshot.total_volume:.2f}",
    ]
    assert {len(row) for row in rows[3:]} == {10}


def test_free_text_that_looks_like_a_formula_stays_text_in_the_csv(
    api: APIClient, owner: Any
) -> None:
    project = make_project(owner=owner, name="=1+1")
    link = '=HYPERLINK("http://example.com","x")'
    _done(project, [analysis_item("thing", 1, 0.2, name="@SUM(A1)")], room=link, room_type="other")
    snapshot = inventory_sync(project_id=project.pk)
    assert snapshot is not None

    rows = _csv_rows(api.get(_url(snapshot, "csv"), {"lang": "en"}).content, ",")
    pdf = _pdf_text(api.get(_url(snapshot, "pdf"), {"lang": "en"}).content)

    assert rows[0] == ["Project", "'=1+1"]
    assert [f"'{link}", "Other", "'@SUM(A1)", "1"] == rows[4][:4]
    assert rows[5][:3] == [f"'{link}", "Other", "Room total"]
    assert "Project: =1+1" in pdf  # only the CSV needs it


@pytest.mark.parametrize("fmt", ["csv", "pdf"])
def test_a_sheet_costs_the_same_queries_whatever_its_size(
    fmt: str, api: APIClient, snapshot: InventorySnapshot, owner: Any
) -> None:
    small = make_project(owner=owner, name="Small")
    _done(small, [analysis_item("chair", 1, 0.3)], room="", room_type="kitchen")
    small_snapshot = inventory_sync(project_id=small.pk)
    assert small_snapshot is not None
    counts = []
    for each in (small_snapshot, snapshot):
        with CaptureQueriesContext(connection) as queries:
            assert api.get(_url(each, fmt)).status_code == 200
        counts.append(len(queries))

    # The token, the project, its latest snapshot, the catalogue's names.
    assert counts == [4, 4]


# --- staff corrections (built elsewhere: a line dict may carry `corrected`) ----------------------


def test_a_corrected_line_is_marked_in_the_csv_and_the_pdf(
    api: APIClient, snapshot: InventorySnapshot
) -> None:
    # A later snapshot as a sync writes one once staff changed the wardrobes from 2 to 3.
    rooms = snapshot.rooms
    for room in rooms:
        for line in room["items"]:
            line["corrected"] = False
            if line["key"] == "wardrobe_2_door":
                line.update(corrected=True, quantity=3, volume_m3=6.0)
                room["itemsCount"] += 1
                room["volume_m3"] += 2.0
    InventorySnapshot.objects.create(
        project_id=snapshot.project_id,
        total_items=snapshot.total_items + 1,
        total_volume=snapshot.total_volume + 2,
        rooms=rooms,
        photo_count=snapshot.photo_count,
    )

    text = _pdf_text(api.get(_url(snapshot, "pdf"), {"lang": "fr"}).content)
    rows = _csv_rows(api.get(_url(snapshot, "csv"), {"lang": "en"}).content, ",")

    assert "Armoire 2 portes 3 2,000 6,00 À démonter, Corrigé" in text
    assert text.count("Corrigé") == 1
    assert f"Total : {snapshot.total_items + 1} objets" in text
    wardrobe = [row for row in rows[4:] if row[2] == "Two-door wardrobe"]
    assert wardrobe == [
        [CYRILLIC, "Bedroom", "Two-door wardrobe", "3", "2.000", "6.00", "", "yes", "yes", ""]
    ]
    assert sum(row[8] == "yes" for row in rows[4:]) == 1


# --- who may read it, and bad input ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "pdf"])
def test_another_users_project_is_not_found(fmt: str, snapshot: InventorySnapshot) -> None:
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Token {make_token(make_user())}")

    response = stranger.get(_url(snapshot, fmt), HTTP_ACCEPT="application/pdf, text/csv")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "No such project."}


@pytest.mark.parametrize("fmt", ["csv", "pdf"])
def test_anonymous_requests_are_refused_as_elsewhere_in_the_api(
    fmt: str, snapshot: InventorySnapshot
) -> None:
    response = APIClient().get(_url(snapshot, fmt))

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "error" in response.json()


@pytest.mark.parametrize("fmt", ["csv", "pdf"])
def test_a_project_without_inventory_is_404_as_its_inventory(
    fmt: str, api: APIClient, owner: Any
) -> None:
    project = make_project(owner=owner)

    response = api.get(f"/api/projects/{project.pk}/inventory.{fmt}", HTTP_ACCEPT=f"*/{fmt}")

    assert response.status_code == 404
    assert response.json() == api.get(f"/api/projects/{project.pk}/inventory").json()


@pytest.mark.parametrize("lang", ["de", "FR", "fr-fr", "french"])
def test_an_unknown_lang_is_a_400(lang: str, api: APIClient, snapshot: InventorySnapshot) -> None:
    response = api.get(_url(snapshot, "pdf"), {"lang": lang})

    assert response.status_code == 400
    body = response.json()
    assert body["error"].startswith("lang: ")
    assert set(body["fields"]) == {"lang"}


def test_a_blank_lang_is_the_request_language(api: APIClient, snapshot: InventorySnapshot) -> None:
    response = api.get(_url(snapshot, "csv"), {"lang": ""}, HTTP_ACCEPT_LANGUAGE="fr")

    assert response.status_code == 200
    assert response["Content-Language"] == "fr"


# --- the admin ------------------------------------------------------------------------------------


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(make_user(staff=True, is_superuser=True))
    return client


def _links(page: str) -> dict[str, str]:
    found = re.findall(r'<a href="([^"]+)" class="cube-sheet">([^<]+)</a>', page)
    return {label: url for url, label in found}


def test_the_snapshot_page_has_cube_sheet_buttons_in_the_staffs_language(
    staff_client: Client, snapshot: InventorySnapshot
) -> None:
    page = staff_client.get(f"/admin/inventory/inventorysnapshot/{snapshot.pk}/change/")
    links = _links(page.content.decode())
    assert set(links) == {"Cube sheet (PDF)", "Cube sheet (CSV)"}

    english = staff_client.get(links["Cube sheet (PDF)"])
    french = staff_client.get(links["Cube sheet (PDF)"], HTTP_ACCEPT_LANGUAGE="fr")
    csv_file = staff_client.get(links["Cube sheet (CSV)"], HTTP_ACCEPT_LANGUAGE="fr")

    assert english.status_code == french.status_code == csv_file.status_code == 200
    assert "3-seat sofa 1 2.000 2.00" in _pdf_text(english.content)
    assert "Canapé 3 places 1 2,000 2,00" in _pdf_text(french.content)
    assert csv_file["Content-Disposition"].startswith('attachment; filename="fiche-de-cubage-')
    assert _csv_rows(csv_file.content, ";")[0] == ["Dossier", NAME]
    french_page = staff_client.get(
        f"/admin/inventory/inventorysnapshot/{snapshot.pk}/change/", HTTP_ACCEPT_LANGUAGE="fr"
    )
    assert set(_links(french_page.content.decode())) == {
        "Fiche de cubage (PDF)",
        "Fiche de cubage (CSV)",
    }


def test_the_project_page_links_the_latest_snapshots_sheet(
    staff_client: Client, snapshot: InventorySnapshot
) -> None:
    older = snapshot
    newer = inventory_sync(project_id=snapshot.project_id)
    assert newer is not None and newer.created_at > older.created_at

    page = staff_client.get(f"/admin/photos/project/{snapshot.project_id}/change/")

    links = _links(page.content.decode())
    assert links["Cube sheet (PDF)"].startswith(
        f"/admin/inventory/inventorysnapshot/{newer.pk}/cube-sheet."
    )
    response = staff_client.get(links["Cube sheet (CSV)"])
    assert response.status_code == 200
    assert ["Project", NAME] in _csv_rows(response.content, ",")


def test_a_project_without_inventory_has_no_cube_sheet_button(staff_client: Client) -> None:
    project = make_project()

    page = staff_client.get(f"/admin/photos/project/{project.pk}/change/")

    assert page.status_code == 200
    assert _links(page.content.decode()) == {}


def test_the_admin_sheet_is_for_staff_with_the_view_permission(
    snapshot: InventorySnapshot,
) -> None:
    url = f"/admin/inventory/inventorysnapshot/{snapshot.pk}/cube-sheet.pdf"
    customer = Client()
    customer.force_login(make_user())
    clerk = make_user(staff=True)
    staff = Client()
    staff.force_login(clerk)

    assert Client().get(url).status_code == 302  # to the login page
    assert customer.get(url).status_code == 302
    assert staff.get(url).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_inventorysnapshot"))
    assert staff.get(url).status_code == 200
    assert staff.get(url.replace(".pdf", ".doc")).status_code == 404
