"""Item lines of an inventory: each room's items merged across the photos that show the room.

One GROUP BY per sync over the DONE photos' item rows (`PhotoItem`, written with each DONE and
already merged within the photo, each with its photo's room: photos/items.py), per room and line,
so Python only prices and shapes the (few) lines; the catalogue is read as it is at the sync.
"""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db.models import (
    Count,
    Func,
    Max,
    Min,
    Q,
    QuerySet,
    StringAgg,
    Sum,
    TextField,
    Value,
)

from inventory.models import VolumeCatalogueEntry
from photos.models import PhotoItem

CENT = Decimal("0.01")
MILLI = Decimal("0.001")
MERGES = ("max", "sum")


#: SQLite stores a UUID as 32 hex digits; this writes the id `{x}` as the API does, with hyphens.
SQLITE_UUID_TEXT = (
    "lower(substr({x}, 1, 8) || '-' || substr({x}, 9, 4) || '-' || substr({x}, 13, 4)"
    " || '-' || substr({x}, 17, 4) || '-' || substr({x}, 21, 12))"
)


class UuidText(Func):
    """A UUID column as text, with hyphens on every database (the API's form of an id)."""

    template = "CAST(%(expressions)s AS text)"
    output_field = TextField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        return SQLITE_UUID_TEXT.format(x=sql), list(params) * 5


def inventory_lines(*, project_id: uuid.UUID | str) -> dict[str, list[dict[str, Any]]]:
    """Each room's item lines (rooms keyed as `Photo.room_key`, or the photo's id without one).

    A line's quantity is the largest quantity of its item seen in any one photo of the room
    (`INVENTORY_MERGE = "sum"`: the sum over the photos); its volume is the catalogue's unit
    volume × quantity, or, for an item the catalogue lacks, the model's estimate (`source`).
    """
    # Priced now, not when the photos were analysed: a staff edit applies from the next sync.
    catalogue = dict(VolumeCatalogueEntry.objects.values_list("key", "volume_m3"))
    rows = inventory_lines_query(project_id=project_id)
    rooms: dict[str, list[dict[str, Any]]] = {}
    for (
        room_group,
        line_key,
        by_name,
        quantity,
        seen,
        volume,
        key,
        name,
        category,
        fragile,
        dismantle,
        ids,
    ) in rows:
        quantity, seen = int(quantity or 0), _decimal(seen)
        unit = None if by_name else catalogue.get(line_key)
        if unit is not None:
            unit, source, key = _decimal(unit), "catalogue", line_key
        else:
            # The model's estimate of one item: the volumes it gave over the quantities it saw.
            unit = _decimal(volume) / seen if seen else Decimal("0")
            source = "model"
        rooms.setdefault(room_group, []).append(
            {
                "key": key,
                "name": name,
                "category": category,
                "quantity": quantity,
                "unitVolume_m3": float(unit.quantize(MILLI, ROUND_HALF_UP)),
                "volume_m3": float((unit * quantity).quantize(CENT, ROUND_HALF_UP)),
                "fragile": bool(fragile),
                "dismantle": bool(dismantle),
                # Sorted here: SQLite before 3.44 cannot order inside an aggregate.
                "photos": sorted(ids.split(",")),
                "source": source,
            }
        )
    for lines in rooms.values():
        lines.sort(key=lambda line: (-line["volume_m3"], line["name"] or "", line["key"] or ""))
    return rooms


def inventory_lines_query(*, project_id: uuid.UUID | str) -> QuerySet[Any, tuple[Any, ...]]:
    """The GROUP BY of `inventory_lines`: per room and line of the project's DONE photos, the
    merged and the summed quantity, the summed volume, the smallest key, name and category, how
    many rows are fragile and to dismantle, the photo ids (the bench's floor runs it raw)."""
    merge = Max if settings.INVENTORY_MERGE == "max" else Sum
    return (
        # Only DONE photos have rows, each row its photo's room: no join to the photos.
        PhotoItem.objects.filter(project_id=project_id)
        .values("room", "line_key", "by_name")
        .annotate(
            merged=merge("quantity"),
            seen=Sum("quantity"),
            volume=Sum("volume_m3"),
            min_key=Min("key"),
            min_name=Min("name"),
            min_category=Min("category"),
            # Counted on columns of the covering index: the rows are read from it alone, in
            # the GROUP BY's order (photos.PhotoItem's index).
            fragiles=Count("fragile", filter=Q(fragile=True)),
            dismantles=Count("dismantle", filter=Q(dismantle=True)),
            # With hyphens on both databases: SQLite's text of a UUID column has none.
            ids=StringAgg(UuidText("photo_id"), delimiter=Value(",")),
        )
        .values_list(
            "room",
            "line_key",
            "by_name",
            "merged",
            "seen",
            "volume",
            "min_key",
            "min_name",
            "min_category",
            "fragiles",
            "dismantles",
            "ids",
        )
        .order_by()
    )


def _decimal(value: Any) -> Decimal:
    # PostgreSQL answers NUMERIC as Decimal; SQLite as int or float (via str: no binary tail).
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))
