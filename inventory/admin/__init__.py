"""Inventory's part of the staff console, one module per admin:

- `project`: the project admin, registered here and not in photos, because a project's page
  shows its photos and its inventory and only inventory may import both;
- `snapshot`: inventory snapshots, read-only;
- `catalogue`: the volume catalogue, editable;
- `correcting`: a project's inventory page, where staff correct its lines;
- `corrections`: the corrections' history, the accuracy report page and its dashboard panel;
- `actions`: sync requests, from the project list or the photo list.

Each model is registered once, by the module that lists all its columns and actions. The photo
admin stays in photos; inventory's one action on it, "Sync the project's inventory", goes into the
extension point photos declares for that (`photos.admin.actions.register_photo_action`, read by
`PhotoAdmin.actions`), below.
"""

from __future__ import annotations

from inventory.admin.actions import sync_project_inventory
from inventory.admin.catalogue import VolumeCatalogueEntryAdmin
from inventory.admin.corrections import InventoryCorrectionAdmin
from inventory.admin.project import ProjectAdmin
from inventory.admin.snapshot import InventorySnapshotAdmin
from photos.admin.actions import register_photo_action

register_photo_action(sync_project_inventory)

__all__ = [
    "InventoryCorrectionAdmin",
    "InventorySnapshotAdmin",
    "ProjectAdmin",
    "VolumeCatalogueEntryAdmin",
]
