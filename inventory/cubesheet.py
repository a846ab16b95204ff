"""The cube sheet: an inventory snapshot as movers print it, each room's item lines, in CSV or PDF.

`cubesheet_build` reads a snapshot into a `CubeSheet` whose every cell is already text in the
active language (room names and types, catalogue names, numbers with the language's decimal
separator, the marks); `cubesheet_csv` and `cubesheet_pdf` only lay those cells out, with headings
in the same language, so the two files always say the same thing. `cubesheet_render`, what the API
and the admin call, holds the language for all three.

- CSV: UTF-8 with a byte-order mark (Excel reads it as UTF-8 only then), written by the csv
  module. A language whose decimal separator is a comma (French) separates fields with `;`, as
  Excel does where it is set up in that language; English uses `,`.
- PDF: drawn by fpdf2 (pure Python) in DejaVu Sans, bundled in `inventory/fonts/` (Bitstream Vera
  licence with DejaVu's public-domain changes: free to redistribute, see the LICENSE there) and
  embedded as a subset. It covers Latin, Greek, Cyrillic, Armenian, Georgian and Hebrew, among
  others; a character it lacks (Chinese, Japanese, emoji…) is printed as "�" so that a reader sees
  something is missing (the CSV keeps every character). Text is not shaped: Arabic letters
  appear in their isolated forms, right-to-left text left to right.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, cast

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone, translation
from django.utils.formats import date_format, get_format, number_format
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.utils.translation import gettext, gettext_lazy, pgettext
from fpdf import FPDF

from inventory.models import InventorySnapshot, VolumeCatalogueEntry
from photos.rooms import room_type_label

FONTS = Path(__file__).resolve().parent / "fonts"
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
        name = _inert(room.name)
        for line in room.lines:
            writer.writerow(
                [
                    name,
                    room.room_type,
                    _inert(line.name),
                    line.quantity,
                    line.unit_volume,
                    line.volume,
                    *(yes if name in line.marks else "" for name in mark_names),
                ]
            )
        total = [name, room.room_type, gettext("Room total"), room.items, "", room.volume]
        writer.writerow(total + no_marks)
    writer.writerow(
        [gettext("Total"), "", "", sheet.total_items, "", sheet.total_volume, *no_marks]
    )
    return "\ufeff".encode() + buffer.getvalue().encode()


def _inert(text: str) -> str:
    """Free text as a spreadsheet shows it, never as a formula: a cell that starts like one
    (`=HYPERLINK(…)` as a room label) gets a leading apostrophe, as OWASP advises for CSV."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def cubesheet_pdf(*, sheet: CubeSheet, created_at: Any = None) -> bytes:
    """An A4 page (or more) per sheet: the title, project and date, a table per room, the total."""
    pdf = _SheetPdf(sheet)
    pdf.set_title(f"{sheet.title} · {sheet.project}")
    pdf.set_lang(sheet.language)
    pdf.set_creator("Moverz")
    if created_at is not None:
        # The snapshot's time, not now: the same snapshot gives the same file.
        pdf.set_creation_date(created_at)
    pdf.add_page()
    pdf.set_font(_FONT, "B", 16)
    pdf.cell(text=sheet.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(_FONT, "", 10)
    pdf.ln(1)
    project = gettext("Project: %(name)s") % {"name": pdf.safe(sheet.project)}
    pdf.multi_cell(w=0, text=project, new_x="LMARGIN", new_y="NEXT")
    pdf.cell(text=gettext("Date: %(date)s") % {"date": sheet.date}, new_x="LMARGIN", new_y="NEXT")
    for room in sheet.rooms:
        pdf.ln(5)
        if pdf.will_page_break(30):  # a room's name, its table's headings and a first line
            pdf.add_page()
        heading = pdf.safe(room.name)
        if room.name != room.room_type:
            heading = f"{heading} ({room.room_type})"
        pdf.room_heading(heading)
        rows: list[Sequence[str]] = [
            (
                pdf.safe(line.name),
                line.quantity,
                line.unit_volume,
                line.volume,
                ", ".join(line.marks),
            )
            for line in room.lines
        ]
        if not rows:
            rows.append((gettext("No item lines."), "", "", "", ""))
        total = (gettext("Room total"), room.items, "", room.volume, "")
        pdf.items_table(heading, sheet.headings, rows, total)
    pdf.ln(6)
    pdf.set_font(_FONT, "B", 12)
    pdf.cell(
        text=gettext("Total: %(items)s items, %(volume)s m³")
        % {"items": sheet.total_items, "volume": sheet.total_volume},
        new_x="LMARGIN",
        new_y="NEXT",
    )
    return bytes(pdf.output())


# --- the PDF's drawing ------------------------------------------------------------------------

_FONT = "DejaVuSans"
#: The page count's placeholder, as wide as "0000": private-use characters, which no text of ours
#: can contain (`_SheetPdf.safe` replaces them: the font has no glyph for them), unlike fpdf2's
#: default "{nb}".
_PAGES = "\ue000" * 4
#: Item, quantity, unit volume, volume, marks (mm, of A4's 190 between the margins).
_WIDTHS = (66, 18, 26, 26, 54)
_ALIGN = ("L", "R", "R", "R", "L")
_TABLE_PT = 9
_PAD_Y = 0.8  # mm above and below a cell's text


@dataclass(frozen=True)
class _Row:
    cells: tuple[list[str], ...]  # each cell's lines
    bold: bool
    height: float


class _SheetPdf(FPDF):
    def __init__(self, sheet: CubeSheet) -> None:
        super().__init__(format="A4")
        self.sheet = sheet
        self.set_margins(10, 12, 10)
        self.set_auto_page_break(auto=True, margin=15)
        self.alias_nb_pages(_PAGES)
        self.set_fill_color(230)  # the tables' headings
        self.add_font(_FONT, "", FONTS / "DejaVuSans.ttf")
        self.add_font(_FONT, "B", FONTS / "DejaVuSans-Bold.ttf")
        # What both faces can draw; less control characters and the placeholder.
        regular, bold = (set(font.cmap) for font in self.fonts.values())  # type: ignore[union-attr]
        self.glyphs = {code for code in regular & bold if code >= 0x20} - {ord(c) for c in _PAGES}

    def safe(self, text: str) -> str:
        """The text with each character the font cannot draw replaced by a visible "�"."""
        return "".join(char if ord(char) in self.glyphs else "\ufffd" for char in text)

    def room_heading(self, text: str) -> None:
        self.set_font(_FONT, "B", 12)
        self.multi_cell(w=0, text=text, new_x="LMARGIN", new_y="NEXT")

    def items_table(
        self,
        room: str,
        headings: Sequence[str],
        rows: Iterable[Sequence[str]],
        total: Sequence[str],
    ) -> None:
        """A room's table; on each page it runs onto, the room again ("continued") and the
        headings.

        Drawn cell by cell rather than with fpdf2's `table()`, which puts every cell's text
        through the line breaker (a sheet of a few thousand lines took a minute): here only a
        text wider than its column is broken into lines."""
        body = [(row, False) for row in rows] + [([self.safe(cell) for cell in total], True)]
        top = self.layout(headings, bold=True)
        rows_laid_out = (self.layout(row, bold=bold) for row, bold in body)
        first = next(rows_laid_out)
        if self.will_page_break(top.height + first.height):
            self.add_page()
        self.draw(top, fill=True)
        for row in (first, *rows_laid_out):
            if self.will_page_break(row.height):
                self.add_page()
                self.room_heading(gettext("%(room)s (continued)") % {"room": room})
                self.draw(top, fill=True)
            self.draw(row)

    def layout(self, row: Sequence[str], *, bold: bool) -> _Row:
        """Each cell's text as the lines it takes in its column, and the row's height."""
        self.set_font(_FONT, "B" if bold else "", _TABLE_PT)
        cells = tuple(
            self.cell_lines(text, width) for text, width in zip(row, _WIDTHS, strict=True)
        )
        lines = max(1, *(len(lines) for lines in cells))
        return _Row(cells, bold, lines * self.leading + 2 * _PAD_Y)

    def cell_lines(self, text: str, width: float) -> list[str]:
        if self.get_string_width(text) <= width - 2 * self.c_margin:
            return [text] if text else []
        lines = self.multi_cell(w=width, h=self.leading, text=text, dry_run=True, output="LINES")
        return cast(list[str], lines)

    def draw(self, row: _Row, *, fill: bool = False) -> None:
        self.set_font(_FONT, "B" if row.bold else "", _TABLE_PT)
        x, y = self.l_margin, self.get_y()
        for lines, width, align in zip(row.cells, _WIDTHS, _ALIGN, strict=True):
            self.rect(x, y, width, row.height, style="DF" if fill else "D")
            top = y + (row.height - len(lines) * self.leading) / 2
            for number, line in enumerate(lines):
                self.set_xy(x, top + number * self.leading)
                self.cell(w=width, h=self.leading, text=line, align=align)
            x += width
        self.set_xy(self.l_margin, y + row.height)

    @property
    def leading(self) -> float:
        """The height of a line of text in a table (mm)."""
        return self.font_size * 1.4

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(_FONT, "", 8)
        self.cell(
            w=0,
            text=f"{self.safe(self.sheet.project)} · {self.sheet.date}",
            align="L",
        )
        self.set_x(self.l_margin)
        self.cell(
            w=0,
            text=gettext("Page %(page)s of %(pages)s") % {"page": self.page_no(), "pages": _PAGES},
            align="R",
        )


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
