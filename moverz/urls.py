"""The project's URLs: each app's own, then the schema, the health check and the admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from moverz.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("", include("photos.urls")),
    path("", include("inventory.urls")),
    path("", include("aimetrics.urls")),
    path("", include("webhooks.urls")),
    path("", include("operations.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
]
