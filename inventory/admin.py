from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from inventory.models import InventorySnapshot


@admin.register(InventorySnapshot)
class InventorySnapshotAdmin(admin.ModelAdmin[InventorySnapshot]):
    list_display = ["project", "total_items", "total_volume", "photo_count", "created_at"]
    list_select_related = ["project"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
