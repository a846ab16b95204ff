"""Seed the volume catalogue from the French movers' guides (shared/reference/volumes.md).

The figures are frozen here on purpose: a data migration must not depend on code that changes.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import migrations

GUIDES = "French movers' guides (reference/volumes.md)"
ESTIMATE = "Moverz estimate (no published reference)"
# key, English, French, category, m³, fragile, dismantle, source
SEED = [
    ("sofa_3_seat", "3-seat sofa", "Canapé 3 places", "furniture", "2.0", False, False, GUIDES),
    ("sofa_2_seat", "2-seat sofa", "Canapé 2 places", "furniture", "1.5", False, False, GUIDES),
    ("armchair", "Armchair", "Fauteuil", "furniture", "0.8", False, False, GUIDES),
    ("double_bed", "Double bed with base", "Lit double avec sommier", "furniture", "2.5", False, True, GUIDES),
    ("single_bed", "Single bed", "Lit simple", "furniture", "1.0", False, True, GUIDES),
    ("wardrobe_2_door", "Two-door wardrobe", "Armoire 2 portes", "furniture", "2.0", False, True, GUIDES),
    ("chest_of_drawers", "Chest of drawers", "Commode", "furniture", "1.0", False, False, GUIDES),
    ("bedside_table", "Bedside table", "Table de chevet", "furniture", "0.2", False, False, GUIDES),
    ("dining_table", "Dining table (6 seats)", "Table à manger (6 places)", "furniture", "1.5", False, True, GUIDES),
    ("chair", "Chair", "Chaise", "furniture", "0.3", False, False, GUIDES),
    ("coffee_table", "Coffee table", "Table basse", "furniture", "0.4", True, False, GUIDES),
    ("tv_unit", "TV unit", "Meuble TV", "furniture", "1.0", False, False, GUIDES),
    ("bookcase", "Bookcase", "Bibliothèque", "furniture", "1.0", False, True, GUIDES),
    ("desk", "Desk", "Bureau", "furniture", "1.0", False, True, GUIDES),
    ("fridge", "Fridge", "Réfrigérateur", "appliance", "1.5", False, False, GUIDES + "; 1.0–2.0 by height, middle value"),
    ("cooker", "Oven / cooker", "Four / cuisinière", "appliance", "0.5", False, False, GUIDES),
    ("washing_machine", "Washing machine", "Lave-linge", "appliance", "0.5", False, False, GUIDES),
    ("carton", "Standard carton 55×35×30 cm", "Carton standard 55×35×30 cm", "box", "0.06", False, False, GUIDES),
    ("television", "Television", "Téléviseur", "electronics", "0.3", True, False, ESTIMATE),
    ("mirror", "Mirror", "Miroir", "decor", "0.1", True, False, ESTIMATE),
]  # fmt: skip


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    entry = apps.get_model("inventory", "VolumeCatalogueEntry")
    for key, label_en, label_fr, category, volume, fragile, dismantle, source in SEED:
        entry.objects.update_or_create(
            key=key,
            defaults={
                "label_en": label_en,
                "label_fr": label_fr,
                "category": category,
                "volume_m3": Decimal(volume),
                "fragile": fragile,
                "dismantle": dismantle,
                "source": source,
            },
        )


def unseed(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("inventory", "VolumeCatalogueEntry").objects.filter(
        key__in=[row[0] for row in SEED]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("inventory", "0002_volume_catalogue")]
    operations = [migrations.RunPython(seed, unseed)]
