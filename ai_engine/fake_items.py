"""The fake provider's item table: names, categories and its "estimated" volumes.

The volumes that count are the staff-editable catalogue's (inventory.VolumeCatalogueEntry), whose
keys these match; the fake provider only uses these to answer like a model would.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class CatalogueEntry:
    key: str
    name: str
    category: str
    volume_m3: Decimal
    fragile: bool = False
    dismantle: bool = False


_ENTRIES = [
    CatalogueEntry("sofa_3_seat", "3-seat sofa", "furniture", Decimal("2.0")),
    CatalogueEntry("sofa_2_seat", "2-seat sofa", "furniture", Decimal("1.5")),
    CatalogueEntry("armchair", "Armchair", "furniture", Decimal("0.8")),
    CatalogueEntry(
        "double_bed", "Double bed with base", "furniture", Decimal("2.5"), dismantle=True
    ),
    CatalogueEntry("single_bed", "Single bed", "furniture", Decimal("1.0"), dismantle=True),
    CatalogueEntry(
        "wardrobe_2_door", "Two-door wardrobe", "furniture", Decimal("2.0"), dismantle=True
    ),
    CatalogueEntry("chest_of_drawers", "Chest of drawers", "furniture", Decimal("1.0")),
    CatalogueEntry("bedside_table", "Bedside table", "furniture", Decimal("0.2")),
    CatalogueEntry(
        "dining_table", "Dining table (6 seats)", "furniture", Decimal("1.5"), dismantle=True
    ),
    CatalogueEntry("chair", "Chair", "furniture", Decimal("0.3")),
    CatalogueEntry("coffee_table", "Coffee table", "furniture", Decimal("0.4"), fragile=True),
    CatalogueEntry("tv_unit", "TV unit", "furniture", Decimal("1.0")),
    CatalogueEntry("bookcase", "Bookcase", "furniture", Decimal("1.0"), dismantle=True),
    CatalogueEntry("desk", "Desk", "furniture", Decimal("1.0"), dismantle=True),
    CatalogueEntry("fridge", "Fridge", "appliance", Decimal("1.5")),
    CatalogueEntry("cooker", "Oven / cooker", "appliance", Decimal("0.5")),
    CatalogueEntry("washing_machine", "Washing machine", "appliance", Decimal("0.5")),
    CatalogueEntry("television", "Television", "electronics", Decimal("0.3"), fragile=True),
    CatalogueEntry("mirror", "Mirror", "decor", Decimal("0.1"), fragile=True),
    CatalogueEntry("carton", "Standard carton 55×35×30 cm", "box", Decimal("0.06")),
]

CATALOGUE: dict[str, CatalogueEntry] = {entry.key: entry for entry in _ENTRIES}
