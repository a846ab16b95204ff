"""Helpers of the management commands: a progress bar, a table printer, id options."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.core.management.base import CommandError


class ProgressBar:
    """`[#####.....] 50/100` on one line of `stream` (stderr, so stdout stays parseable).
    Drawn only for runs of at least `min_total` items."""

    def __init__(self, stream: Any, total: int, *, width: int = 30, min_total: int = 20) -> None:
        self.stream = stream
        self.total = total
        self.width = width
        self.enabled = total >= min_total
        self.done = 0

    def advance(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        end = "\n" if self.done == self.total else ""
        self.stream.write(f"\r[{bar}] {self.done}/{self.total}{end}")
        self.stream.flush()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def parse_id_option(value: str, *, option: str, what: str) -> uuid.UUID:
    """A UUID given on the command line, or a CommandError that says which option was wrong."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not a {what} id") from None
