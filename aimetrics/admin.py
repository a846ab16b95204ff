from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from aimetrics.models import AiMetric


@admin.register(AiMetric)
class AiMetricAdmin(admin.ModelAdmin[AiMetric]):
    list_display = [
        "created_at",
        "provider",
        "model",
        "operation",
        "latency_ms",
        "success",
        "error_type",
    ]
    list_filter = ["provider", "operation", "success", "error_type"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
