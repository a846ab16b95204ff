"""AI calls, read-only: a log that staff filter, never edit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ai_engine.errors import ErrorCode
from ai_engine.pricing import FREE, GENAI_PRICES, OVERRIDE, UNPRICED
from ai_engine.registry import KNOWN_PROVIDERS
from aimetrics.models import LEGACY_PRICE_SOURCE, AiMetric
from infra.admin_tools import CappedCountPaginator, ValueListFilter, search_by_uuid

#: Choices of the model and operation filters come from the newest rows (a range of the
#: created_at index), not from `SELECT DISTINCT` over a table of a million rows.
RECENT_ROWS = 1000
OPERATIONS = ("detect_room", "analyze_photo")


def _recent_values(column: str) -> set[str]:
    recent = AiMetric.objects.order_by("-created_at").values_list(column, flat=True)
    return {value for value in recent[:RECENT_ROWS] if value}


class ProviderFilter(ValueListFilter):
    title = _("provider")
    parameter_name = "provider"
    lookup = "provider"

    def values(self, request: HttpRequest) -> Iterable[tuple[str, str]]:
        return [(name, name) for name in KNOWN_PROVIDERS]


class ModelFilter(ValueListFilter):
    title = _("model")
    parameter_name = "model"
    lookup = "model"

    def values(self, request: HttpRequest) -> Iterable[tuple[str, str]]:
        known = {settings.ANTHROPIC_MODEL, settings.OPENAI_MODEL} | set(settings.AI_PRICES)
        return [(name, name) for name in sorted(known | _recent_values("model"))]


class OperationFilter(ValueListFilter):
    title = _("operation")
    parameter_name = "operation"
    lookup = "operation"

    def values(self, request: HttpRequest) -> Iterable[tuple[str, str]]:
        return [(name, name) for name in sorted(set(OPERATIONS) | _recent_values("operation"))]


class PriceSourceFilter(ValueListFilter):
    title = _("price source")
    parameter_name = "price_source"
    lookup = "price_source"

    def values(self, request: HttpRequest) -> Iterable[tuple[str, str]]:
        # No query: the sources are known (an older genai-prices version typed in still filters).
        known = {GENAI_PRICES, OVERRIDE, FREE, UNPRICED, LEGACY_PRICE_SOURCE}
        return [(name, name) for name in sorted(known)]


class ErrorTypeFilter(ValueListFilter):
    title = _("error type")
    parameter_name = "error_type"
    lookup = "error_type"

    def values(self, request: HttpRequest) -> Iterable[tuple[str, str]]:
        return [(code.value, code.value) for code in ErrorCode]


METRIC_FIELDS = (
    "created_at",
    "provider",
    "model",
    "operation",
    "latency_ms",
    "success",
    "error_type",
    "retries",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "price_source",
    "photo_link",
    "project_link",
    "meta",
)


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
        "tokens_in",
        "tokens_out",
        "cost_usd",
        "price_source",
        "photo_link",
    ]
    list_filter = [
        ProviderFilter,
        ModelFilter,
        OperationFilter,
        "success",
        ErrorTypeFilter,
        PriceSourceFilter,
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["model", "operation"]
    search_help_text = _("A photo or project id (exact), or part of a model or operation name.")
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = METRIC_FIELDS
    readonly_fields = METRIC_FIELDS

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AiMetric], search_term: str
    ) -> tuple[QuerySet[AiMetric], bool]:
        by_id = search_by_uuid(queryset, search_term, ["photo_id", "project_id"])
        if by_id is not None:
            return by_id, False
        return super().get_search_results(request, queryset, search_term)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("photo"))
    def photo_link(self, metric: AiMetric) -> str:
        # photo_id is a plain UUID column (aimetrics does not depend on photos): the link is
        # resolved by URL name, and leads to a 404 page if the photo was deleted.
        if metric.photo_id is None:
            return self.get_empty_value_display()
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:photos_photo_change", args=[metric.photo_id]),
            str(metric.photo_id)[:8],
        )

    @admin.display(description=_("project"))
    def project_link(self, metric: AiMetric) -> str:
        if metric.project_id is None:
            return self.get_empty_value_display()
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">{}</a>',
            reverse("admin:photos_project_change", args=[metric.project_id]),
            metric.project_id,
            reverse("admin:aimetrics_aimetric_changelist")
            + "?"
            + urlencode({"project_id": str(metric.project_id)}),
            gettext("all AI calls of this project"),
        )
