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
from django.db.models import Case, Count, F, Max, Q, StringAgg, Sum, TextField, Value, When
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from inventory.models import InventorySnapshot
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
    its own. Its room type is the one most of its photos have.
    """
    if not Project.objects.filter(pk=project_id).update(inventory_sync_requested_at=None):
        return None
    rooms = _rooms(project_id)
    return InventorySnapshot.objects.create(
        project_id=project_id,
        total_items=sum(room["itemsCount"] for room in rooms),
        total_volume=sum(
            (Decimal(str(room["volume_m3"])) for room in rooms), Decimal("0")
        ).quantize(Decimal("0.01")),
        rooms=rooms,
        photo_count=sum(len(room["photos"]) for room in rooms),
    )


def _rooms(project_id: uuid.UUID | str) -> list[dict[str, Any]]:
    """One GROUP BY per (room, room type) over the DONE photos, from the covering index."""
    room = Case(
        When(room_key="", then=Cast("id", TextField())),
        default=F("room_key"),
        output_field=TextField(),
    )
    rows = (
        Photo.objects.filter(project_id=project_id, status=Photo.Status.DONE)
        .values(group=room, type=Coalesce("room_type", Value("other")))
        .annotate(
            label=Max("room_label"),
            photos=Count("id"),
            items=Coalesce(Sum("items_count"), 0),
            volume=Coalesce(Sum("volume_m3"), Decimal("0")),
            ids=StringAgg(Cast("id", TextField()), delimiter=Value(",")),
        )
        .order_by()
    )
    rooms: dict[str, dict[str, Any]] = {}
    types: dict[str, Counter[str]] = {}
    for row in rows:
        entry = rooms.setdefault(
            row["group"],
            {"label": row["label"], "items": 0, "volume": Decimal("0"), "photos": []},
        )
        entry["items"] += row["items"]
        entry["volume"] += Decimal(row["volume"])
        entry["photos"].extend(row["ids"].split(","))
        types.setdefault(row["group"], Counter())[row["type"]] += row["photos"]
    out = []
    for group, entry in rooms.items():
        # The most frequent room type; a tie goes to the first key in alphabetical order.
        room_type = min(types[group].items(), key=lambda kv: (-kv[1], kv[0]))[0]
        photos = sorted(entry["photos"])  # SQLite before 3.44 cannot order inside an aggregate
        out.append(
            {
                "room": entry["label"] or None,
                "roomType": room_type,
                "itemsCount": entry["items"],
                "volume_m3": float(entry["volume"].quantize(Decimal("0.01"))),
                "photos": photos,
            }
        )
    # Labelled rooms by label, then the photos that are rooms of their own, by room type.
    out.sort(
        key=lambda r: (
            r["room"] is None,
            room_label_key(r["room"] or ""),
            r["roomType"],
            r["photos"][0],
        )
    )
    return out
