"""How good is the model? Staff corrections are ground truth, read per provider, model and
prompt version (the analyses of the corrected room, captured when the correction was made).

Over the corrections made in a window (`since` ≤ created_at < `until`):

- **added**: lines staff added (items the model missed);
- **removed**: lines of the model staff removed (items that are not there);
- **quantity changed**, **key changed**: lines of the model staff corrected. Corrections of a
  line staff had added themselves (a line with no photo) say nothing of the model: not counted;
- **volume error** of a corrected room: |AI volume − corrected volume| / corrected volume, in
  percent, where the AI volume is the room's lines as the model's answers give them and the
  corrected volume the room once every correction up to the last one of the window applied
  (both captured by that correction). One figure per corrected room (a project's room, by its
  group), attributed to the provenance of that last correction; P50 and P90 are PostgreSQL's
  percentile_cont over the rooms. A room staff emptied (corrected volume 0) has no ratio: it is
  counted in `emptied_rooms`, not in the percentiles.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from infra.stats import percentile
from inventory.models import InventoryCorrection

Action = InventoryCorrection.Action
#: The figures of each action, by its field name in `Accuracy`.
COUNTED: dict[str, str] = {
    Action.ADD: "added",
    Action.REMOVE: "removed",
    Action.SET_QUANTITY: "quantity_changed",
    Action.CHANGE_KEY: "key_changed",
}


@dataclass(frozen=True, kw_only=True)
class Accuracy:
    """One provider, model and prompt version over the window."""

    provider: str
    model: str
    prompt_version: str
    added: int
    removed: int
    quantity_changed: int
    key_changed: int
    rooms: int  # corrected rooms with a volume error
    emptied_rooms: int
    volume_error_p50: float | None  # percent
    volume_error_p90: float | None


def inventory_accuracy(*, since: datetime, until: datetime) -> list[Accuracy]:
    """The figures of the module docstring, one row per provenance, in its order (one query)."""
    rows = (
        InventoryCorrection.objects.filter(created_at__gte=since, created_at__lt=until)
        .exclude(provider="")
        .order_by("created_at", "id")
        .values(
            "project_id",
            "room_group",
            "action",
            "before",
            "provider",
            "model",
            "prompt_version",
            "room_ai_volume_m3",
            "room_volume_m3",
        )
    )
    counts: dict[tuple[str, str, str], Counter[str]] = {}
    last: dict[tuple[Any, str], dict[str, Any]] = {}
    for row in rows.iterator():
        provenance = (row["provider"], row["model"], row["prompt_version"])
        tally = counts.setdefault(provenance, Counter())
        before = row["before"] if isinstance(row["before"], dict) else {}
        if row["action"] == Action.ADD or before.get("photos"):
            tally[COUNTED[row["action"]]] += 1
        last[row["project_id"], row["room_group"]] = dict(row)  # rows come oldest first
    errors: dict[tuple[str, str, str], list[float]] = {}
    for room in last.values():
        provenance = (room["provider"], room["model"], room["prompt_version"])
        tally = counts[provenance]
        corrected, ai = Decimal(room["room_volume_m3"]), Decimal(room["room_ai_volume_m3"])
        if corrected == 0:
            tally["emptied_rooms"] += 1
        else:
            errors.setdefault(provenance, []).append(float(abs(ai - corrected) / corrected * 100))
    report = []
    for provenance in sorted(counts):
        ordered = sorted(errors.get(provenance, []))
        tally = counts[provenance]
        report.append(
            Accuracy(
                provider=provenance[0],
                model=provenance[1],
                prompt_version=provenance[2],
                **{name: tally[name] for name in COUNTED.values()},
                rooms=len(ordered),
                emptied_rooms=tally["emptied_rooms"],
                volume_error_p50=_rounded(percentile(ordered, 0.5)),
                volume_error_p90=_rounded(percentile(ordered, 0.9)),
            )
        )
    return report


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
