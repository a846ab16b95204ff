from __future__ import annotations

from django.contrib import admin
from django.urls import path

from aimetrics.views import ai_dashboard

urlpatterns = [
    path(
        "admin/aimetrics/dashboard/",
        admin.site.admin_view(ai_dashboard),
        name="aimetrics-dashboard",
    ),
]
