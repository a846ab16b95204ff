"""Item lines of an inventory: each room's items merged across the photos that show the room.

One statement per sync: the DONE photos' `analysis` items are unnested in the database, priced
from the volume catalogue and merged per room, so Python only shapes the (few) lines. The items
of a JSON column cannot be unnested through the ORM, hence raw SQL; PostgreSQL and SQLite (for
`make run`) differ only in the fragments of `_DIALECTS` (unnesting and reading the JSON, the id
as text, a name's normal form). Everything else is standard SQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Func, TextField

from inventory.models import VolumeCatalogueEntry
from photos.models import Photo, Project
from photos.rooms import room_label_key

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


@dataclass(frozen=True)
class _Dialect:
    items: str  # FROM clause: the photo `p` and its items `e`
    text: str  # an item's field as text; {f} is the field's name
    true: str  # an item's field is JSON true
    photo_id: str  # the photo id {x} as the API writes it
    normal_name: str  # a name's normal form, of the SQL expression {x}
    group_concat: str  # the ids of a group, comma-separated, of {x}
    guard: str  # WHERE condition that keeps only photos whose items are a list
    setup: tuple[str, ...] = ()  # statements run first, in the statement's transaction


_DIALECTS = {
    "postgresql": _Dialect(
        items=(
            "photos_photo p CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN"
            " jsonb_typeof(p.analysis -> 'items') = 'array' THEN p.analysis -> 'items'"
            " ELSE '[]'::jsonb END) AS e(value)"
        ),
        text="(e.value ->> '{f}')",
        true="(e.value -> '{f}') = 'true'::jsonb",
        photo_id="{x}::text",
        normal_name="lower(regexp_replace(btrim({x}), '\\s+', ' ', 'g'))",
        group_concat="string_agg({x}, ',')",
        guard="TRUE",
        # The planner cannot know how many items a photo has (it assumes 100): its cost
        # estimate then asks for JIT compilation, which took longer than the statement, and
        # the default work_mem made the merge's sort spill to disk.
        setup=("SET LOCAL jit = off", "SET LOCAL work_mem = '64MB'"),
    ),
    "sqlite": _Dialect(
        # json_each of a missing path yields no rows; of an object, its members: the guard.
        items="photos_photo p, json_each(p.analysis, '$.items') AS e",
        text="json_extract(e.value, '$.{f}')",
        true="json_type(e.value, '$.{f}') = 'true'",
        photo_id=SQLITE_UUID_TEXT,
        normal_name="moverz_normal_name({x})",  # registered below: SQLite has no regexp_replace
        group_concat="group_concat({x}, ',')",
        guard="json_type(p.analysis, '$.items') = 'array'",
    ),
}


def register_sqlite_functions(sender: Any, connection: Any, **kwargs: Any) -> None:
    """`connection_created` receiver: the SQL functions the SQLite dialect needs."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            "moverz_normal_name", 1, _normal_name, deterministic=True
        )


def _normal_name(name: Any) -> str | None:
    return room_label_key(name) if isinstance(name, str) else None


def _sql(dialect: _Dialect, merge: str) -> str:
    text = dialect.text.format
    true = dialect.true.format
    catalogue = VolumeCatalogueEntry._meta.db_table
    photos = dialect.group_concat.format(x=dialect.photo_id.format(x="photo"))
    # A room: the photos of one label, or one photo without a label (its id). A line: the items
    # of one catalogue key, or, for items the catalogue lacks, of one normalised name. Its
    # quantity in a photo is the sum of that photo's items of it; in the room, the largest
    # (merge "max") or the sum (merge "sum") over the room's photos.
    return f"""
WITH item AS (
  SELECT NULLIF(p.room_key, '') AS rkey,
         CASE WHEN p.room_key = '' THEN p.id END AS alone,
         p.id AS photo,
         c.key AS ckey,
         c.volume_m3 AS unit,
         CASE WHEN c.key IS NULL THEN {dialect.normal_name.format(x=text(f="name"))} END AS nname,
         {text(f="key")} AS key,
         {text(f="name")} AS name,
         {text(f="category")} AS category,
         CAST({text(f="quantity")} AS NUMERIC) AS quantity,
         CAST({text(f="volume_m3")} AS NUMERIC) AS volume,
         CASE WHEN {true(f="fragile")} THEN 1 ELSE 0 END AS fragile,
         CASE WHEN {true(f="dismantle")} THEN 1 ELSE 0 END AS dismantle
  FROM {dialect.items}
  LEFT JOIN {catalogue} c ON c.key = {text(f="key")}
  WHERE p.project_id = %s AND p.status = %s AND {dialect.guard}
),
seen AS (
  SELECT rkey, alone, ckey, nname, photo, SUM(quantity) AS quantity, SUM(volume) AS volume,
         MAX(unit) AS unit, MIN(key) AS key, MIN(name) AS name, MIN(category) AS category,
         MAX(fragile) AS fragile, MAX(dismantle) AS dismantle
  FROM item GROUP BY rkey, alone, ckey, nname, photo
)
SELECT COALESCE(rkey, {dialect.photo_id.format(x="alone")}), {merge.upper()}(quantity),
       SUM(quantity), SUM(volume), MAX(unit), ckey, MIN(key), MIN(name), MIN(category),
       MAX(fragile), MAX(dismantle), {photos}
FROM seen GROUP BY rkey, alone, ckey, nname
"""


def floor_sql() -> str:
    """The PostgreSQL statement, for the bench's floor (parameters: project id, status)."""
    return _sql(_DIALECTS["postgresql"], "max")


def inventory_lines(*, project_id: uuid.UUID | str) -> dict[str, list[dict[str, Any]]]:
    """Each room's item lines (rooms keyed as `Photo.room_key`, or the photo's id without one).

    A line's quantity is the largest quantity of its item seen in any one photo of the room
    (`INVENTORY_MERGE = "sum"`: the sum over the photos); its volume is the catalogue's unit
    volume × quantity, or, for an item the catalogue lacks, the model's estimate (`source`).
    """
    merge = settings.INVENTORY_MERGE
    dialect = _DIALECTS[connection.vendor]
    project = Project._meta.pk.get_db_prep_value(uuid.UUID(str(project_id)), connection)
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in dialect.setup:
            cursor.execute(statement)
        cursor.execute(_sql(dialect, merge), [project, Photo.Status.DONE])
        rows = cursor.fetchall()
    rooms: dict[str, list[dict[str, Any]]] = {}
    for (
        room,
        quantity,
        seen,
        volume,
        unit,
        ckey,
        key,
        name,
        category,
        fragile,
        dismantle,
        ids,
    ) in rows:
        quantity, seen = int(quantity or 0), _decimal(seen)
        if unit is not None:
            unit, source = _decimal(unit), "catalogue"
        else:
            # The model's estimate of one item: the volumes it gave over the quantities it saw.
            unit = _decimal(volume) / seen if seen else Decimal("0")
            source = "model"
        rooms.setdefault(room, []).append(
            {
                "key": ckey or key,
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


def _decimal(value: Any) -> Decimal:
    # PostgreSQL answers NUMERIC as Decimal; SQLite as int or float (via str: no binary tail).
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))
