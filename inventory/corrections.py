"""Staff corrections of the inventory's item lines, and the rules by which a sync applies them.

A correction is a row of its own (`InventoryCorrection`); the model's answer is never edited.
Each sync takes the lines `inventory.lines` merged from the DONE photos and applies the project's
corrections to them, oldest first, each to the lines as the ones before it left them:

- a line is found within its room by its key: its catalogue key, or the normalised name of an
  item the catalogue lacks (`line_identity`); a room by its group (the photos' `room_key`, or the
  photo's id for an unlabelled photo);
- **set_quantity** sets the line's quantity (its volume follows: unit volume × quantity);
  several on one line: the latest wins;
- **change_key** makes the line that catalogue entry's (name, category, unit volume, fragile,
  dismantle from the catalogue; the quantity and photos stay); if the room already has a line
  of that key, the two become one, their quantities merged as the photos' are
  (`INVENTORY_MERGE`: the larger, or the sum);
- **remove** drops the line;
- these three apply only while their line exists: a re-analysis that no longer finds it (or a
  photo gone from the room) leaves the correction stored but *not applied*, shown as such in the
  admin (`InventoryCorrection.applies`, written by the sync when it changes);
- **add** always applies: a catalogue line with no photos; if the room has a line of that key by
  then (the model now sees it), the room's line takes the larger quantity of the two, so an item
  is not counted twice; if the room itself is gone, it is listed as it was when the correction
  was made, with no photos.

Every line says whether a correction touched it (`corrected`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from inventory.lines import CENT, MILLI, inventory_lines
from inventory.models import InventoryCorrection, VolumeCatalogueEntry
from photos.models import Photo, Project
from photos.rooms import room_label_key

Action = InventoryCorrection.Action
Lines = dict[str, list[dict[str, Any]]]


class CorrectionError(ValueError):
    """A correction that cannot be made; the message says why, for a form (`field` names the
    bad input, or is None)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def line_identity(line: Mapping[str, Any]) -> str:
    """How a correction names a line within its room: the catalogue key, or, for an item the
    catalogue lacks (whose key is the model's, shared by all such items), its normalised name."""
    if line.get("source") == "catalogue" or not line.get("name"):
        return str(line.get("key") or "")
    return room_label_key(str(line["name"]))


@dataclass
class Applied:
    """Each room's lines once the corrections applied, and which of them did."""

    rooms: Lines
    applies: list[bool]  # one per correction, in their order
    #: Rooms an added line keeps although no DONE photo is in them any more: group → (label, type)
    kept_rooms: dict[str, tuple[str, str]] = field(default_factory=dict)

    def extra_rooms(self, known: Iterable[str]) -> list[tuple[str, str | None, str, list[str]]]:
        """(group, label, room type, photos) of the rooms only corrections keep, after `known`."""
        seen = set(known)
        return [
            (group, label or None, room_type or "other", [])
            for group, (label, room_type) in self.kept_rooms.items()
            if group not in seen and self.rooms.get(group)
        ]


def corrections_apply(
    *,
    lines: Mapping[str, Sequence[dict[str, Any]]],
    corrections: Sequence[InventoryCorrection],
    catalogue: Mapping[str, VolumeCatalogueEntry],
    merge: str = "max",
) -> Applied:
    """The rules of the module docstring (no query). The rooms corrections touch are copies;
    the others keep the input's line dicts, only marked `corrected: false` (a sync's thousands
    of untouched lines are not copied and sorted again)."""
    touched = {correction.room_group for correction in corrections}
    rooms: Lines = {}
    for group, given in lines.items():
        if group in touched:
            rooms[group] = [{**item, "corrected": False} for item in given]
        else:
            for item in given:
                item["corrected"] = False
            rooms[group] = list(given)
    applies = []
    kept: dict[str, tuple[str, str]] = {}
    for correction in corrections:
        room = rooms.get(correction.room_group)
        line = _find(room, correction.line_key) if room else None
        entry = catalogue.get(correction.new_key) if correction.new_key else None
        ok = True
        if correction.action == Action.ADD:
            if entry is None:  # its catalogue entry was deleted since
                ok = False
            else:
                room = rooms.setdefault(correction.room_group, [])
                kept.setdefault(
                    correction.room_group, (correction.room_label, correction.room_type)
                )
                added = _from_catalogue({"photos": [], "fragile": False, "dismantle": False}, entry)
                _set_quantity(added, correction.quantity or 0)
                # Staff and the model saw the same item: the larger count, whatever the merge.
                _merge_into(room, added, "max")
        elif room is None or line is None:
            ok = False
        elif correction.action == Action.SET_QUANTITY:
            _set_quantity(line, correction.quantity or 0)
            line["corrected"] = True
        elif correction.action == Action.REMOVE:
            room.remove(line)
        elif correction.action == Action.CHANGE_KEY:
            if entry is None:
                ok = False
            else:
                room.remove(line)
                _merge_into(room, _from_catalogue(line, entry), merge)
        applies.append(ok)
    for group in touched & rooms.keys():
        # The order of inventory.lines: the largest volumes first.
        rooms[group].sort(
            key=lambda line: (-line["volume_m3"], line["name"] or "", line["key"] or "")
        )
    return Applied(rooms=rooms, applies=applies, kept_rooms=kept)


def _find(room: list[dict[str, Any]], identity: str) -> dict[str, Any] | None:
    return next((line for line in room if line_identity(line) == identity), None)


def _set_quantity(line: dict[str, Any], quantity: int) -> None:
    line["quantity"] = quantity
    unit = Decimal(str(line["unitVolume_m3"]))
    line["volume_m3"] = float((unit * quantity).quantize(CENT, ROUND_HALF_UP))


def _from_catalogue(line: Mapping[str, Any], entry: VolumeCatalogueEntry) -> dict[str, Any]:
    """The line as that catalogue entry's; its quantity and photos stay."""
    changed = {
        **line,
        "key": entry.key,
        "name": entry.label_en,
        "category": entry.category,
        "unitVolume_m3": float(Decimal(entry.volume_m3).quantize(MILLI, ROUND_HALF_UP)),
        "fragile": entry.fragile,
        "dismantle": entry.dismantle,
        "source": "catalogue",
        "corrected": True,
    }
    _set_quantity(changed, int(line.get("quantity") or 0))
    return changed


def _merge_into(room: list[dict[str, Any]], line: dict[str, Any], merge: str) -> None:
    """Add `line` to the room, or merge it into the room's line of the same key."""
    same = _find(room, line_identity(line))
    if same is None:
        room.append(line)
        return
    a, b = int(same["quantity"]), int(line["quantity"])
    _set_quantity(same, a + b if merge == "sum" else max(a, b))
    same["photos"] = sorted({*same["photos"], *line["photos"]})
    same["fragile"] = bool(same["fragile"] or line["fragile"])
    same["dismantle"] = bool(same["dismantle"] or line["dismantle"])
    same["corrected"] = True


def corrections_catalogue(
    corrections: Sequence[InventoryCorrection],
) -> dict[str, VolumeCatalogueEntry]:
    keys = {c.new_key for c in corrections if c.new_key}
    if not keys:
        return {}
    return {entry.key: entry for entry in VolumeCatalogueEntry.objects.filter(key__in=keys)}


def corrections_of(project_id: uuid.UUID | str) -> list[InventoryCorrection]:
    """The project's corrections, in the order they apply."""
    return list(
        InventoryCorrection.objects.filter(project_id=project_id).order_by("created_at", "id")
    )


def inventory_corrected_lines(
    *,
    project_id: uuid.UUID | str,
    lines: Mapping[str, Sequence[dict[str, Any]]],
    record: bool = True,
) -> Applied:
    """The sync's step: the project's corrections applied to `lines` (one query, a second for
    the catalogue entries they name); `record`: each correction's `applies` updated where it
    changed."""
    corrections = corrections_of(project_id)
    applied = corrections_apply(
        lines=lines,
        corrections=corrections,
        catalogue=corrections_catalogue(corrections),
        merge=settings.INVENTORY_MERGE,
    )
    for value in (True, False):
        stale = [
            c.pk
            for c, ok in zip(corrections, applied.applies, strict=True)
            if ok is value and c.applies is not value
        ]
        if stale and record:
            InventoryCorrection.objects.filter(pk__in=stale).update(applies=value)
    return applied


# --- making a correction ----------------------------------------------------------------------


def _provenance(photo_ids: Iterable[str]) -> tuple[str, str, str]:
    """The analysis (provider, model, prompt version) most of these photos have (ties: the
    first in order); blank for none."""
    rows = Photo.objects.filter(pk__in=list(photo_ids)).values_list(
        "analysis__provider", "analysis__model", "analysis__promptVersion"
    )
    counts = Counter(tuple(str(v or "") for v in row) for row in rows)
    if not counts:
        return ("", "", "")
    provider, model, prompt = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return provider, model, prompt


def _volume(lines: Iterable[Mapping[str, Any]]) -> Decimal:
    return sum((Decimal(str(line["volume_m3"])) for line in lines), Decimal("0"))


def correction_create(
    *,
    project: Project,
    room_group: str,
    action: str,
    line_key: str = "",
    quantity: int | None = None,
    new_key: str = "",
    photo: Photo | None = None,
    user: Any = None,
) -> InventoryCorrection:
    """Record one staff correction, checked against the inventory as it is now (the photos'
    lines with the earlier corrections), then ask for a sync. Raises CorrectionError, changing
    nothing, for a room or line that does not exist, a negative quantity, an unknown key."""
    from inventory.services import inventory_request_sync, inventory_rooms

    if action not in Action.values:
        raise CorrectionError(_("Unknown correction."), field="action")
    room = dict(inventory_rooms(project_id=project.pk, record=False)).get(room_group)
    if room is None:
        raise CorrectionError(_("This project has no such room."), field="room")
    correction = InventoryCorrection(
        project=project,
        room_group=room_group,
        room_label=room["room"] or "",
        room_type=room["roomType"],
        photo=photo,
        action=action,
        created_by=user if getattr(user, "pk", None) else None,
    )
    if action in (Action.SET_QUANTITY, Action.ADD):
        if quantity is None or isinstance(quantity, bool) or quantity < 0:
            raise CorrectionError(_("Give a quantity of 0 or more."), field="quantity")
        if action == Action.ADD and quantity < 1:
            raise CorrectionError(
                _("An added line has a quantity of at least 1."), field="quantity"
            )
        correction.quantity = quantity
    if action in (Action.CHANGE_KEY, Action.ADD):
        entry = VolumeCatalogueEntry.objects.filter(key=new_key).first() if new_key else None
        if entry is None:
            raise CorrectionError(
                _("Give a key of the volume catalogue (add the item to the catalogue first)."),
                field="key",
            )
        correction.new_key = entry.key
    corrections = corrections_of(project.pk)
    catalogue = corrections_catalogue([*corrections, correction])
    merge = settings.INVENTORY_MERGE
    ai = inventory_lines(project_id=project.pk)
    if action == Action.ADD:
        correction.line_key = correction.new_key
        before = _find(room["items"], correction.new_key)
        if before is not None:
            raise CorrectionError(
                _("This room already has this line: change its quantity instead."), field="key"
            )
    else:
        before = _find(room["items"], line_key) if line_key else None
        if before is None:
            raise CorrectionError(_("This room has no such line."), field="line")
        if action == Action.CHANGE_KEY and correction.new_key == before["key"]:
            raise CorrectionError(_("The line already has this key."), field="key")
        correction.line_key = line_key
    correction.before = before
    correction.provider, correction.model, correction.prompt_version = _provenance(room["photos"])
    ai_room = ai.get(room_group, [])
    ai_line = _find(ai_room, line_key) if action != Action.ADD else None
    correction.ai_volume_m3 = _volume([ai_line] if ai_line else [])
    correction.room_ai_volume_m3 = _volume(ai_room)
    after = corrections_apply(
        lines=ai, corrections=[*corrections, correction], catalogue=catalogue, merge=merge
    ).rooms.get(room_group, [])
    target = correction.new_key or line_key
    correction.after = None if action == Action.REMOVE else _find(after, target)
    correction.room_volume_m3 = _volume(after)
    with transaction.atomic():
        correction.save()
        inventory_request_sync(project_id=project.pk, delay_ms=0)
    return correction
