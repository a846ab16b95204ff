"""The item rows (photos.PhotoItem) of the photos DONE before the table, from their analysis, as a
DONE writes them (photos/items.py). Here rather than in photos: a line's identity needs the
volume catalogue, which is inventory's."""

from django.db import migrations


def backfill(apps, schema_editor):
    from photos.items import photo_items_backfill

    catalogue = apps.get_model("inventory", "VolumeCatalogueEntry")
    photo_items_backfill(
        catalogued=set(catalogue.objects.values_list("key", flat=True)),
        photo_model=apps.get_model("photos", "Photo"),
        item_model=apps.get_model("photos", "PhotoItem"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0005_inventory_corrections"),
        ("photos", "0011_photo_items"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True)]
