"""A DONE photo's item lines as rows (`PhotoItem`): written with the DONE, read by the inventory.

The inventory sync aggregates these rows in the database (inventory/lines.py) instead of
unnesting every photo's `analysis` JSON at every sync: the JSON is read once, here, when the
photo becomes DONE. A photo's items are merged into its lines as the sync would merge them:

- a line is the item's key where the volume catalogue has it, else the item's name in normal
  form (`room_label_key`: case and spacing aside); the catalogue as it is when the rows are
  written (the copy the analysis priced the items from) decides what is one line, the catalogue
  as it is at the sync what a line costs (inventory/lines.py);
- a line's quantity and volume are the sums of its items' in the photo; its key, name and
  category the smallest of theirs (as given by the model); fragile / dismantle if any item is;
- each row holds the photo's room (`Photo.room_group`), so the sync groups rows without reading
  the photos; the state machine (photos/lifecycle.py) and `Photo.save` keep it right.
"""

from __future__ import annotations

import uuid
from collections.abc import Container
from decimal import Decimal, InvalidOperation
from itertools import batched
from typing import Any

from django.db.models import Model

from photos.models import Photo, PhotoItem
from photos.rooms import room_group, room_label_key
from photos.volumes import volume_catalogue

#: Photos read per batch by the backfill.
BACKFILL_BATCH = 500


def photo_items_replace(
    *, photo_id: uuid.UUID | str, project_id: uuid.UUID | str, room: str, analysis: Any
) -> None:
    """The photo's rows become its `analysis` lines', in `room` (its `Photo.room_group`), in
    the caller's transaction: the DONE's. The catalogue is the per-process copy
    (photos.volumes): no query while it is fresh."""
    items = _items(analysis)
    catalogued = volume_catalogue().volumes(
        item["key"] for item in items if isinstance(item.get("key"), str)
    )
    PhotoItem.objects.filter(photo_id=photo_id).delete()
    PhotoItem.objects.bulk_create(
        photo_item_rows(
            PhotoItem,
            photo_id=photo_id,
            project_id=project_id,
            room=room,
            analysis=analysis,
            catalogued=catalogued,
        )
    )


def photo_item_rows(
    model: type[Model],
    *,
    photo_id: Any,
    project_id: Any,
    room: str,
    analysis: Any,
    catalogued: Container[str],
) -> list[Any]:
    """Unsaved `model` rows (PhotoItem, or its historical model in a migration): one per line of
    the analysis' items, `catalogued` the keys the volume catalogue has. Whatever is not a list
    of objects gives no rows; a missing or non-numeric quantity or volume counts as none."""
    lines: dict[tuple[bool, str], dict[str, Any]] = {}
    for item in _items(analysis):
        key, name = _text(item.get("key")), _text(item.get("name"))
        if key is not None and key in catalogued:
            by_name, line_key = False, key
        else:
            by_name, line_key = True, room_label_key(name) if name is not None else ""
        row = lines.setdefault(
            (by_name, line_key),
            {"quantity": Decimal("0"), "volume_m3": Decimal("0")},
        )
        row["quantity"] += _number(item.get("quantity"))
        row["volume_m3"] += _number(item.get("volume_m3"))
        for flag in ("fragile", "dismantle"):
            row[flag] = row.get(flag, False) or item.get(flag) is True
        for field in ("key", "name", "category"):
            row[field] = _smallest(row.get(field), _text(item.get(field)))
    return [
        model(
            photo_id=photo_id,
            project_id=project_id,
            room=room,
            line_key=line_key,
            by_name=by_name,
            **(row | {"quantity": int(row["quantity"])}),
        )
        for (by_name, line_key), row in lines.items()
    ]


def photo_items_backfill(
    *,
    catalogued: Container[str],
    photo_model: type[Model] = Photo,
    item_model: type[Model] = PhotoItem,
) -> int:
    """Write the rows of every DONE photo that has none, `catalogued` the keys the volume
    catalogue has (photos' migration 0012 runs this with its historical models); the number of
    photos given rows."""
    photos = (
        photo_model._default_manager.filter(status="DONE", items__isnull=True)
        .values_list("pk", "project_id", "room_key", "analysis")
        .order_by("pk")
    )
    done = 0
    for batch in batched(photos.iterator(chunk_size=BACKFILL_BATCH), BACKFILL_BATCH):
        rows = [
            row
            for photo_id, project_id, room_key, analysis in batch
            for row in photo_item_rows(
                item_model,
                photo_id=photo_id,
                project_id=project_id,
                room=room_group(room_key=room_key, photo_id=photo_id),
                analysis=analysis,
                catalogued=catalogued,
            )
        ]
        item_model._default_manager.bulk_create(rows)
        done += len(batch)
    return done


def _items(analysis: Any) -> list[dict[str, Any]]:
    items = analysis.get("items") if isinstance(analysis, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _smallest(current: str | None, value: str | None) -> str | None:
    if current is None or value is None:
        return current if value is None else value
    return min(current, value)


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return Decimal("0")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return Decimal("0")
    return number if number.is_finite() else Decimal("0")
