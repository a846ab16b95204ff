# Each item row carries its photo's room (PhotoItem.room), so the inventory sync groups the rows
# without joining the photos; rows exist only for DONE photos. The rows are written again, from
# the DONE photos' analysis, by the code a DONE runs (photos/items.py): inventory 0006 did it
# before the room existed and is now a no-op.

from django.db import migrations, models


def rewrite(apps, schema_editor):
    from photos.items import photo_items_backfill

    item = apps.get_model("photos", "PhotoItem")
    item._default_manager.all().delete()
    catalogue = apps.get_model("inventory", "VolumeCatalogueEntry")
    photo_items_backfill(
        catalogued=set(catalogue.objects.values_list("key", flat=True)),
        photo_model=apps.get_model("photos", "Photo"),
        item_model=item,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0006_backfill_photo_items"),
        ("photos", "0011_photo_items"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="photoitem", name="photoitem_project_cover"),
        migrations.AddField(
            model_name="photoitem",
            name="room",
            field=models.TextField(default=""),
            preserve_default=False,
        ),
        migrations.AddIndex(
            model_name="photoitem",
            index=models.Index(
                fields=["project", "room", "line_key", "by_name"],
                include=(
                    "photo",
                    "key",
                    "name",
                    "category",
                    "quantity",
                    "volume_m3",
                    "fragile",
                    "dismantle",
                ),
                name="photoitem_project_room_line",
            ),
        ),
        # After the index: PostgreSQL cannot build it with the rows' foreign-key checks pending.
        migrations.RunPython(rewrite, migrations.RunPython.noop, elidable=True),
    ]
