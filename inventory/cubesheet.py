"""The cube sheet: an inventory snapshot as movers print it, each room's item lines, in CSV or PDF.

`cubesheet_build` reads a snapshot into a `CubeSheet` whose every cell is already text in the
active language (room names and types, catalogue names, numbers with the language's decimal
separator, the marks); `cubesheet_csv` and `cubesheet_pdf` only lay those cells out, with headings
in the same language, so the two files always say the same thing. `cubesheet_render`, what the API
and the admin call, holds the language for all three.

- CSV: UTF-8 with a byte-order mark (Excel reads it as UTF-8 only then), written by the csv
  module. A language whose decimal separator is a comma (French) separates fields with `;`, as
  Excel does where it is set up in that language; English uses `,`. Free text that starts like a
  formula gets a leading apostrophe.
- PDF: `inventory.cubesheet_pdf` (fpdf2, A4, DejaVu Sans).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone, translation
from django.utils.formats import date_format, get_format, number_format
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.utils.translation import gettext, gettext_lazy, pgettext

from inventory.cubesheet_pdf import cubesheet_pdf
from inventory.models import InventorySnapshot, VolumeCatalogueEntry
from photos.rooms import room_type_label

FORMATS = ("csv", "pdf")
Format = Literal["csv", "pdf"]

#: A line's marks, in the order the sheet shows them: the line's field, the mark's name.
MARKS = (
    ("fragile", gettext_lazy("Fragile")),
    ("dismantle", gettext_lazy("To dismantle")),
    # Set by a staff correction; a snapshot written before corrections existed has no such key.
    ("corrected", gettext_lazy("Corrected")),
    # The catalogue lacks the item: its volume is the model's estimate.
    ("estimated", gettext_lazy("Estimated volume")),
)


@dataclass(frozen=True)
class SheetLine:
    name: str
    quantity: str
    unit_volume: str
    volume: str
    marks: tuple[str, ...]  # the names of the marks it has, in MARKS' order


@dataclass(frozen=True)
class SheetRoom:
    name: str  # the household's label, or the room type for a photo without one
    room_type: str
    lines: tuple[SheetLine, ...]
    items: str
    volume: str


@dataclass(frozen=True)
class CubeSheet:
    """A snapshot's sheet, every cell text in the language that was active when it was built."""

    language: str
    title: str
    project: str
    date: str
    rooms: tuple[SheetRoom, ...]
    total_items: str
    total_volume: str
    filename_stem: str

    @property
    def headings(self) -> tuple[str, ...]:
        """The item table's columns (the PDF; the CSV adds the room and one column per mark)."""
        return (
            gettext("Item"),
            gettext("Quantity"),
            gettext("Unit volume (m³)"),
            gettext("Volume (m³)"),
            gettext("Marks"),
        )


@dataclass(frozen=True)
class SheetFile:
    content: bytes
    content_type: str
    filename: str
    as_attachment: bool
    language: str


def cubesheet_render(
    *, snapshot: InventorySnapshot, fmt: Format, language: str | None = None
) -> SheetFile:
    """The snapshot's cube sheet as a file, in `language` (default: the active language)."""
    with translation.override(language or _language()):
        sheet = cubesheet_build(snapshot=snapshot)
        if fmt == "csv":
            return SheetFile(
                cubesheet_csv(sheet=sheet),
                "text/csv; charset=utf-8",
                f"{sheet.filename_stem}.csv",
                as_attachment=True,
                language=sheet.language,
            )
        # Inline: a browser shows the PDF, and saves it under its filename.
        return SheetFile(
            cubesheet_pdf(sheet=sheet, created_at=snapshot.created_at),
            "application/pdf",
            f"{sheet.filename_stem}.pdf",
            as_attachment=False,
            language=sheet.language,
        )


def cubesheet_response(sheet: SheetFile) -> HttpResponse:
    """The file as an HTTP response with its Content-Disposition."""
    response = HttpResponse(sheet.content, content_type=sheet.content_type)
    disposition = content_disposition_header(sheet.as_attachment, sheet.filename)
    if disposition:
        response["Content-Disposition"] = disposition
    response["Content-Language"] = sheet.language
    return response


def cubesheet_build(*, snapshot: InventorySnapshot) -> CubeSheet:
    """The snapshot's rooms and lines as text, in the active language (one catalogue query)."""
    rooms_data = [room for room in _list(snapshot.rooms) if isinstance(room, dict)]
    lines_data = [
        [line for line in _list(room.get("items")) if isinstance(line, dict)] for room in rooms_data
    ]
    names = _catalogue_names({line.get("key") for lines in lines_data for line in lines})
    # Photos without a label are rooms of their own, shown by their room type: the second
    # "Bedroom" of the sheet is "Bedroom 2".
    types = [room_type_label(room.get("roomType")) or gettext("Room") for room in rooms_data]
    unlabelled = Counter(
        t for room, t in zip(rooms_data, types, strict=True) if not room.get("room")
    )
    seen: Counter[str] = Counter()
    rooms = []
    for room, room_type, lines in zip(rooms_data, types, lines_data, strict=True):
        name = room.get("room")
        if not name:
            seen[room_type] += 1
            name = room_type if unlabelled[room_type] == 1 else f"{room_type} {seen[room_type]}"
        rooms.append(
            SheetRoom(
                name=_clean(str(name)),
                room_type=room_type,
                lines=tuple(_line(line, names) for line in lines),
                items=_integer(room.get("itemsCount")),
                volume=_decimal(room.get("volume_m3"), 2),
            )
        )
    project = _clean(snapshot.project.name)
    created = timezone.localtime(snapshot.created_at)
    return CubeSheet(
        language=_language(),
        title=gettext("Cube sheet"),
        project=project,
        date=date_format(created, "DATETIME_FORMAT"),
        rooms=tuple(rooms),
        total_items=_integer(snapshot.total_items),
        total_volume=_decimal(snapshot.total_volume, 2),
        # Filenames in ASCII: every browser and mail client keeps them as they are.
        filename_stem="-".join(
            (
                gettext("cube-sheet"),
                slugify(project)[:60].strip("-") or str(snapshot.project_id),
                f"{created:%Y-%m-%d}",
            )
        ),
    )


def cubesheet_csv(*, sheet: CubeSheet) -> bytes:
    """One row per line (its room repeated, one column per mark), a total row per room, and the
    project's total; the project and the date above."""
    delimiter = ";" if get_format("DECIMAL_SEPARATOR") == "," else ","
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow([gettext("Project"), _inert(sheet.project)])
    writer.writerow([gettext("Date"), sheet.date])
    writer.writerow([])
    item, quantity, unit, volume, _marks = sheet.headings
    mark_names = [str(name) for _field, name in MARKS]
    writer.writerow(
        [gettext("Room"), gettext("Room type"), item, quantity, unit, volume, *mark_names]
    )
    yes = gettext("yes")
    no_marks = [""] * len(mark_names)  # the total rows: every row of the table has every column
    for room in sheet.rooms:
        room_name = _inert(room.name)
        for line in room.lines:
            writer.writerow(
                [
                    room_name,
                    room.room_type,
                    _inert(line.name),
                    line.quantity,
                    line.unit_volume,
                    line.volume,
                    *(yes if mark in line.marks else "" for mark in mark_names),
                ]
            )
        total = [room_name, room.room_type, gettext("Room total"), room.items, "", room.volume]
        writer.writerow(total + no_marks)
    writer.writerow(
        [gettext("Total"), "", "", sheet.total_items, "", sheet.total_volume, *no_marks]
    )
    return "\ufeff".encode() + buffer.getvalue().encode()


def _inert(text: str) -> str:
    """Free text as a spreadsheet shows it, never as a formula: a cell that starts like one
    (`=HYPERLINK(…)` as a room label) gets a leading apostrophe, as OWASP advises for CSV."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# --- cells ------------------------------------------------------------------------------------


def _line(line: dict[str, Any], names: dict[str, str]) -> SheetLine:
    key = line.get("key")
    name = names.get(key) if isinstance(key, str) else None
    name = name or line.get("name") or key or pgettext("item", "unnamed")
    flags = {
        "fragile": line.get("fragile") is True,
        "dismantle": line.get("dismantle") is True,
        "corrected": line.get("corrected") is True,
        "estimated": line.get("source") == "model",
    }
    return SheetLine(
        name=_clean(str(name)),
        quantity=_integer(line.get("quantity")),
        unit_volume=_decimal(line.get("unitVolume_m3"), 3),
        volume=_decimal(line.get("volume_m3"), 2),
        marks=tuple(str(mark) for field, mark in MARKS if flags[field]),
    )


def _catalogue_names(keys: Iterable[Any]) -> dict[str, str]:
    """Catalogue keys → the item's name in the active language."""
    wanted = {key for key in keys if isinstance(key, str) and key}
    if not wanted:
        return {}
    field = "label_fr" if _language().startswith("fr") else "label_en"
    return dict(
        VolumeCatalogueEntry.objects.filter(key__in=wanted).values_list("key", field).order_by()
    )


def _language() -> str:
    return translation.get_language() or settings.LANGUAGE_CODE


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _clean(text: str) -> str:
    # Free text from clients and the model: one line, no control characters.
    return " ".join(text.split())


def _integer(value: Any) -> str:
    try:
        return number_format(int(value))
    except (TypeError, ValueError):
        return "0"


def _decimal(value: Any, places: int) -> str:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        number = Decimal("0")
    if not number.is_finite():
        number = Decimal("0")
    return number_format(number, decimal_pos=places)
