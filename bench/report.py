"""The report: one JSON document, a Markdown table, and the table put into docs/benchmarks.md.

Every row shows our figure, its floor measured in the same run, the ratio, and the issue's target
with met / missed and by how much (the rows: bench/rows.py; the table: bench/table.py).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from bench.infra import ROOT
from bench.rows import Builder
from bench.table import markdown

DOCS = ROOT / "docs" / "benchmarks.md"
TABLE_START = "<!-- bench:table:start -->"
TABLE_END = "<!-- bench:table:end -->"


def write(results: dict[str, Any], meta: dict[str, Any], out_dir: Path, update_docs: bool) -> Path:
    builder = Builder(results)
    builder.build()
    meta = meta | {"python": platform.python_version()}
    table = markdown(builder.rows, meta)
    document = {
        "meta": meta,
        "targets": [target.as_json() for target in builder.targets],
        "results": results,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "latest.json"
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    (out_dir / "latest.md").write_text(table)
    if update_docs:
        _update_docs(table)
    return json_path


def _update_docs(table: str) -> None:
    """Replace the table between the markers in docs/benchmarks.md (the rest is prose)."""
    text = DOCS.read_text() if DOCS.exists() else f"# Benchmarks\n\n{TABLE_START}\n{TABLE_END}\n"
    if TABLE_START not in text or TABLE_END not in text:
        text += f"\n{TABLE_START}\n{TABLE_END}\n"
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    DOCS.write_text(f"{head}{TABLE_START}\n{table}{TABLE_END}{tail}")
