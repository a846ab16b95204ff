"""What changed between two inventory snapshots of a project, room by room."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from inventory.models import InventorySnapshot


@dataclass(frozen=True)
class RoomChange:
    room_type: str
    items_before: int
    items_after: int
    volume_before: Decimal
    volume_after: Decimal

    @property
    def items_delta(self) -> int:
        return self.items_after - self.items_before

    @property
    def volume_delta(self) -> Decimal:
        return self.volume_after - self.volume_before


@dataclass(frozen=True)
class SnapshotDiff:
    previous: InventorySnapshot | None
    rooms: list[RoomChange]
    items_delta: int
    volume_delta: Decimal


def _rooms_by_type(rooms: Any) -> dict[str, tuple[int, Decimal]]:
    by_type: dict[str, tuple[int, Decimal]] = {}
    for room in rooms if isinstance(rooms, list) else []:
        if not isinstance(room, dict):
            continue
        name = str(room.get("roomType") or "other")
        items, volume = by_type.get(name, (0, Decimal("0")))
        by_type[name] = (
            items + int(room.get("itemsCount") or 0),
            volume + Decimal(str(room.get("volume_m3") or 0)),
        )
    return by_type


def snapshot_previous(snapshot: InventorySnapshot) -> InventorySnapshot | None:
    """The snapshot of the same project written just before this one."""
    return (
        InventorySnapshot.objects.filter(
            project_id=snapshot.project_id, created_at__lt=snapshot.created_at
        )
        .order_by("-created_at", "-pk")
        .first()
    )


def snapshot_diff(snapshot: InventorySnapshot, previous: InventorySnapshot | None) -> SnapshotDiff:
    """Items and volume per room, before and after; the first snapshot compares with nothing.

    Rooms are listed in the order of the newer snapshot, then the rooms that disappeared.
    """
    after = _rooms_by_type(snapshot.rooms)
    before = _rooms_by_type(previous.rooms if previous else [])
    zero = (0, Decimal("0"))
    names = list(after) + sorted(name for name in before if name not in after)
    rooms = [
        RoomChange(
            room_type=name,
            items_before=before.get(name, zero)[0],
            items_after=after.get(name, zero)[0],
            volume_before=before.get(name, zero)[1],
            volume_after=after.get(name, zero)[1],
        )
        for name in names
    ]
    return SnapshotDiff(
        previous=previous,
        rooms=rooms,
        items_delta=snapshot.total_items - (previous.total_items if previous else 0),
        volume_delta=Decimal(snapshot.total_volume)
        - (Decimal(previous.total_volume) if previous else Decimal("0")),
    )
