"""PostgreSQL: store a snapshot's `rooms` out of line without trying to compress it.

`rooms` lists every photo id of the project. Random UUIDs do not compress, and PostgreSQL's
default (pglz) finds that out only after trying, on every write of a large value, and then stores
it uncompressed anyway; EXTERNAL storage keeps it out of line without the attempt. Other databases
have no such setting: nothing to do there.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

TABLE_COLUMN = 'ALTER TABLE "inventory_inventorysnapshot" ALTER COLUMN "rooms" SET STORAGE {}'


def _storage(kind: str) -> Any:
    def apply(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(TABLE_COLUMN.format(kind))

    return apply


class Migration(migrations.Migration):
    dependencies = [("inventory", "0003_seed_volume_catalogue")]

    operations = [
        migrations.RunPython(_storage("EXTERNAL"), _storage("EXTENDED")),
    ]
