"""Inventories: one snapshot per sync, aggregated in SQL from the project's DONE photos."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Case, Count, F, Max, Q, StringAgg, TextField, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from inventory.corrections import inventory_corrected_lines
from inventory.lines import UuidText, inventory_lines
from inventory.models import InventorySnapshot
from inventory.signals import inventory_updated
from photos.models import Photo, Project
from photos.rooms import room_label_key

logger = logging.getLogger(__name__)
#: A sync request older than this is assumed lost (its message never ran) and may be renewed.
STALE_REQUEST = timedelta(minutes=10)


def inventory_request_sync(*, project_id: uuid.UUID | str, delay_ms: int | None = None) -> bool:
    """Ask for a sync of the project's inventory; True when this call sent the message.

    Coalesced: while a requested sync has not started, further requests send nothing. The sync
    clears the request when it starts, so photos finished during a sync get a sync of their own.
    """
    from django.conf import settings

    now = timezone.now()
    requested = (
        Project.objects.filter(pk=project_id)
        .filter(
            Q(inventory_sync_requested_at__isnull=True)
            | Q(inventory_sync_requested_at__lt=now - STALE_REQUEST)
        )
        .update(inventory_sync_requested_at=now)
    )
    if requested:
        delay = settings.INVENTORY_SYNC_DELAY_MS if delay_ms is None else delay_ms
        transaction.on_commit(partial(inventory_send_sync, str(project_id), delay or None))
    return bool(requested)


def inventory_send_sync(project_id: str, delay_ms: int | None) -> None:
    """Send the inventory-sync message now. A broker failure is logged, not raised: the request
    stays recorded on the project, and the relay sends it once Redis is back."""
    from inventory.tasks import sync_inventory

    try:
        sync_inventory.send_with_options(args=(project_id,), delay=delay_ms)
    except Exception:
        logger.exception("could not send inventory-sync for project %s; the relay will", project_id)


def inventory_sync(*, project_id: uuid.UUID | str) -> InventorySnapshot | None:
    """Write a new snapshot from all DONE photos of the project (None if the project is gone).

    A room is the photos of one label (`Photo.room_key`); a photo without a label is a room of
    its own. Its room type is the one most of its photos have; its figures are the sums of its
    item lines (`inventory.lines`), where an item seen in several photos of the room counts once,
    with the staff's corrections applied (`inventory.corrections`).
    """
    if not Project.objects.filter(pk=project_id).update(inventory_sync_requested_at=None):
        return None
    rooms = [room for _group, room in inventory_rooms(project_id=project_id)]
    with transaction.atomic():
        snapshot = InventorySnapshot.objects.create(
            project_id=project_id,
            total_items=sum(room["itemsCount"] for room in rooms),
            total_volume=sum(
                (Decimal(str(room["volume_m3"])) for room in rooms), Decimal("0")
            ).quantize(Decimal("0.01")),
            rooms=rooms,
            photo_count=sum(len(room["photos"]) for room in rooms),
        )
        inventory_updated.send(sender=InventorySnapshot, snapshot=snapshot)
    return snapshot


def inventory_rooms(
    *, project_id: uuid.UUID | str, record: bool = True
) -> list[tuple[str, dict[str, Any]]]:
    """(group, room) of each room of the inventory as a sync writes it now: the DONE photos'
    lines with the staff's corrections applied. `record`: store which corrections applied
    (the sync does; the admin's page only reads)."""
    corrected = inventory_corrected_lines(
        project_id=project_id, lines=inventory_lines(project_id=project_id), record=record
    )
    found = _rooms(project_id)
    rooms = []
    for group, label, room_type, photos in [*found, *corrected.extra_rooms(r[0] for r in found)]:
        items = corrected.rooms.get(group, [])
        volume = sum((Decimal(str(line["volume_m3"])) for line in items), Decimal("0"))
        room = {
            "room": label,
            "roomType": room_type,
            "itemsCount": sum(line["quantity"] for line in items),
            "volume_m3": float(volume),
            "photos": photos,
            "items": items,
        }
        rooms.append((group, room))
    return rooms


def _rooms(project_id: uuid.UUID | str) -> list[tuple[str, str | None, str, list[str]]]:
    """(group, label, room type, photo ids) of each room, in the inventory's order: labelled
    rooms by label, then the photos that are rooms of their own, by room type. One GROUP BY per
    room and room type over the DONE photos, answered from the covering index."""
    group = Case(
        When(room_key="", then=UuidText("id")),
        default=F("room_key"),
        output_field=TextField(),
    )
    rows = (
        Photo.objects.filter(project_id=project_id, status=Photo.Status.DONE)
        .values(group=group, type=Coalesce("room_type", Value("other")))
        .annotate(
            label=Max("room_label"),
            photos=Count("id"),
            # With hyphens on both databases: SQLite's text of a UUID column has none.
            ids=StringAgg(UuidText("id"), delimiter=Value(",")),
        )
        .order_by()
    )
    labels: dict[str, str | None] = {}
    photos: dict[str, list[str]] = {}
    types: dict[str, Counter[str]] = {}
    for row in rows:
        labels[row["group"]] = row["label"] or None
        photos.setdefault(row["group"], []).extend(row["ids"].split(","))
        types.setdefault(row["group"], Counter())[row["type"]] += row["photos"]
    rooms = []
    for key, label in labels.items():
        # The type most of its photos have; a tie goes to the first in alphabetical order.
        room_type = min(types[key].items(), key=lambda kv: (-kv[1], kv[0]))[0]
        # Sorted here: SQLite before 3.44 cannot order inside an aggregate.
        rooms.append((key, label, room_type, sorted(photos[key])))
    rooms.sort(key=lambda r: (r[1] is None, room_label_key(r[1] or ""), r[2], r[3][0]))
    return rooms
