"""The cube sheet's PDF: A4, a table per room, drawn by fpdf2 (pure Python: `pip install` is all
it needs). This module is the one that knows fpdf2 and the font.

The text is DejaVu Sans, bundled in `inventory/fonts/` (from the rinoh-typeface-dejavusans wheel:
DejaVu 2.37, Bitstream Vera licence with DejaVu's public-domain changes, free to redistribute; see
the LICENSE there) and embedded as a subset. It covers Latin, Greek, Cyrillic, Armenian, Georgian
and Hebrew, among others; a character it lacks (Chinese, Japanese, emoji…) is printed as "�", so
that a reader sees something is missing (the CSV keeps every character). Text is not shaped:
Arabic letters appear in their isolated forms, right-to-left text left to right.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from django.utils.translation import gettext
from fpdf import FPDF

if TYPE_CHECKING:
    # Only for annotations: inventory.cubesheet imports this module.
    from inventory.cubesheet import CubeSheet

FONTS = Path(__file__).resolve().parent / "fonts"


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
