"""The report's table: a row, a target with its verdict, how figures are written, and the
Markdown the rows make (bench/rows.py decides which rows each section contributes)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass
class Row:
    section: str
    figure: str
    ours: str
    floor: str = "—"
    ratio: str = "—"
    target: str = "—"
    verdict: str = "—"


@dataclass
class Target:
    name: str
    value: float | None
    limit: float
    at_most: bool  # True: value <= limit; False: value >= limit
    unit: str

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def describe(self) -> str:
        return f"{'≤' if self.at_most else '≥'} {num(self.limit)}{self.unit}"

    def verdict(self) -> str:
        if self.value is None:
            return "not measured"
        if math.isinf(self.value):
            return "**missed** (not every photo finished)"
        share = self.value / self.limit if self.limit else float("inf")
        if self.met:
            if self.at_most:
                return f"**met** ({share:.0%} of the limit)"
            return f"**met** ({share:.2f}× the target)"
        if self.at_most:
            return f"**missed** by {share - 1:.0%} ({share:.2f}× the limit)"
        return f"**missed** by {1 - share:.0%} ({share:.2f}× the target)"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "limit": self.limit,
            "comparison": "<=" if self.at_most else ">=",
            "unit": self.unit.strip(),
            "met": self.met,
        }


def num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def ratio(ours: float | None, floor: float | None) -> str:
    if ours is None or not floor:
        return "—"
    return f"{ours / floor:.1f}×"


def cpu(run: dict[str, Any]) -> str:
    """CPU ms per request: web processes + PostgreSQL + Redis."""
    per_request = run.get("cpu_ms_per_request")
    if not per_request:
        return "—"
    server, postgres, redis = (per_request[k] for k in ("server", "postgres", "redis"))
    return f"{server:.1f}+{postgres:.1f}+{redis:.1f} ms"


def pct(sub: dict[str, Any], *names: str) -> str:
    return " / ".join(num(sub.get(name)) for name in names)


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    lines = [
        f"Run of {meta['finished']} on {meta['host']} ({meta['cpus']} CPUs), "
        f"{meta['duration_s']:.0f} s{' (--quick: not comparable)' if meta.get('quick') else ''}. "
        f"Machine load (1-minute load average) before the sections: "
        + ", ".join(f"{load['label']} {load['loadavg'][0]}" for load in meta["loads"])
        + ".",
        "",
        "| section | figure | ours | floor (same run) | ours ÷ floor | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row.section, row.figure, row.ours, row.floor, row.ratio, row.target, row.verdict]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
