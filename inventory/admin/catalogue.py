"""The volume catalogue's admin: staff edit the volumes movers quote from."""

from __future__ import annotations

from django.contrib import admin

from inventory.models import VolumeCatalogueEntry


@admin.register(VolumeCatalogueEntry)
class VolumeCatalogueEntryAdmin(admin.ModelAdmin[VolumeCatalogueEntry]):
    """Staff edit the volumes movers quote from; the next analysed photo uses the new figures."""

    list_display = [
        "key",
        "label_en",
        "label_fr",
        "category",
        "volume_m3",
        "fragile",
        "dismantle",
        "source",
    ]
    list_editable = ["volume_m3"]
    list_filter = ["category", "fragile", "dismantle"]
    search_fields = ["key", "label_en", "label_fr"]
    readonly_fields = ["updated_at"]
