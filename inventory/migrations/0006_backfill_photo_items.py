"""Was: the item rows (photos.PhotoItem) of the photos DONE before the table. photos 0012 writes
them now, with the room each row has since; kept, empty, for the migrations that name it."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0005_inventory_corrections"),
        ("photos", "0011_photo_items"),
    ]

    operations: list[migrations.operations.base.Operation] = []
