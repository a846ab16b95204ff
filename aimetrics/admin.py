from __future__ import annotations

from django.contrib import admin

from aimetrics.models import AiMetric


@admin.register(AiMetric)
class AiMetricAdmin(admin.ModelAdmin[AiMetric]):
    list_display = ["created_at", "provider", "model", "operation", "latency_ms", "success", "error_type"]
    list_filter = ["provider", "operation", "success", "error_type"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False
