from __future__ import annotations

from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from aimetrics.views import ai_dashboard
from inventory.api import InventorySyncView, InventoryView
from moverz.admin_views import queues_page
from moverz.health import healthz
from moverz.metrics import metrics_view
from moverz.views import QueuesView
from photos.api.views import (
    PhotoDetailView,
    PhotoEnqueueView,
    PhotoListView,
    ProjectDetailView,
    ProjectListView,
)

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/projects", ProjectListView.as_view(), name="projects"),
    path("api/projects/<str:project_id>", ProjectDetailView.as_view(), name="project"),
    path("api/projects/<str:project_id>/inventory", InventoryView.as_view(), name="inventory"),
    path(
        "api/projects/<str:project_id>/inventory/sync",
        InventorySyncView.as_view(),
        name="inventory-sync",
    ),
    path("api/photos", PhotoListView.as_view(), name="photos"),
    path("api/photos/enqueue", PhotoEnqueueView.as_view(), name="photo-enqueue"),
    path("api/photos/<str:photo_id>", PhotoDetailView.as_view(), name="photo"),
    path("api/queues", QueuesView.as_view(), name="queues"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/queues/", admin.site.admin_view(queues_page), name="admin-queues"),
    path(
        "admin/aimetrics/dashboard/",
        admin.site.admin_view(ai_dashboard),
        name="aimetrics-dashboard",
    ),
    path("admin/", admin.site.urls),
]
