from __future__ import annotations

from django.contrib import admin
from django.urls import path

from operations.admin_views import queues_page
from operations.api import QueuesView
from operations.metrics import metrics_view

urlpatterns = [
    path("metrics", metrics_view, name="metrics"),
    path("api/queues", QueuesView.as_view(), name="queues"),
    path("admin/queues/", admin.site.admin_view(queues_page), name="admin-queues"),
]
