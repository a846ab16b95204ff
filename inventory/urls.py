from __future__ import annotations

from django.urls import path

from inventory.api import CubeSheetCsvView, CubeSheetPdfView, InventorySyncView, InventoryView

urlpatterns = [
    path("api/projects/<str:project_id>/inventory", InventoryView.as_view(), name="inventory"),
    path(
        "api/projects/<str:project_id>/inventory.csv",
        CubeSheetCsvView.as_view(),
        name="inventory-csv",
    ),
    path(
        "api/projects/<str:project_id>/inventory.pdf",
        CubeSheetPdfView.as_view(),
        name="inventory-pdf",
    ),
    path(
        "api/projects/<str:project_id>/inventory/sync",
        InventorySyncView.as_view(),
        name="inventory-sync",
    ),
]
