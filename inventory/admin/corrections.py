"""Staff corrections in the admin: the list of corrections (who, when, before → after, whether
the latest sync applied it), the accuracy report page, and its panel on the AI dashboard.

Corrections are made on a project's inventory page (`inventory.admin.correcting`), never through
a change form here: a correction is checked against the inventory as it is when it is made.
Deleting one undoes it: the project's inventory is synced again without it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from aimetrics.forms import DashboardWindowForm
from infra.admin_tools import CappedCountPaginator
from inventory.dashboard import accuracy_panel
from inventory.models import InventoryCorrection
from inventory.services import inventory_request_sync
from photos.admin.filters import ProjectListFilter

#: The accuracy report's default window on its own page (the dashboard passes its own).
ACCURACY_WINDOW = "30d"


def corrections_url(project_id: Any) -> str:
    """The correction list, filtered to one project."""
    return (
        reverse("admin:inventory_inventorycorrection_changelist")
        + "?"
        + urlencode({ProjectListFilter.parameter_name: str(project_id)})
    )


def line_change(correction: InventoryCorrection) -> str:
    """ "2 → 4", "chair → bookcase", "chair → (removed)", "(none) → 2 fridge"."""
    before = correction.before if isinstance(correction.before, dict) else None
    after = correction.after if isinstance(correction.after, dict) else None
    if correction.action == InventoryCorrection.Action.SET_QUANTITY:
        return f"{(before or {}).get('quantity', '?')} → {correction.quantity}"
    if correction.action == InventoryCorrection.Action.CHANGE_KEY:
        return f"{(before or {}).get('key', correction.line_key)} → {correction.new_key}"
    if correction.action == InventoryCorrection.Action.REMOVE:
        return gettext("%(quantity)s × %(key)s → (removed)") % {
            "quantity": (before or {}).get("quantity", "?"),
            "key": correction.line_key,
        }
    return gettext("(none) → %(quantity)s × %(key)s") % {
        "quantity": (after or {}).get("quantity", correction.quantity),
        "key": correction.new_key,
    }


CORRECTION_FIELDS = (
    "project_link",
    "room",
    "room_type",
    "photo_id",
    "action",
    "line_key",
    "quantity",
    "new_key",
    "change",
    "before",
    "after",
    "applies",
    "provider",
    "model",
    "prompt_version",
    "ai_volume_m3",
    "room_ai_volume_m3",
    "room_volume_m3",
    "created_by",
    "created_at",
)


@admin.register(InventoryCorrection)
class InventoryCorrectionAdmin(admin.ModelAdmin[InventoryCorrection]):
    """Read-only history of the staff's corrections; delete one to undo it."""

    list_display = [
        "created_at",
        "project_link",
        "room",
        "action",
        "line_key",
        "change",
        "applies",
        "created_by",
        "provider",
        "model",
        "prompt_version",
    ]
    list_filter = [
        ProjectListFilter,
        "action",
        "applies",
        "provider",
        ("created_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["project", "created_by"]
    search_fields = ["line_key", "new_key", "room_label", "project__name"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = CORRECTION_FIELDS
    readonly_fields = CORRECTION_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: InventoryCorrection) -> None:
        super().delete_model(request, obj)
        inventory_request_sync(project_id=obj.project_id, delay_ms=0)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[InventoryCorrection]
    ) -> None:
        projects = set(queryset.values_list("project_id", flat=True))
        super().delete_queryset(request, queryset)
        for project_id in projects:
            inventory_request_sync(project_id=project_id, delay_ms=0)

    def get_urls(self) -> list[URLPattern]:
        accuracy = path(
            "accuracy/",
            self.admin_site.admin_view(self.accuracy_view),
            name="inventory_inventorycorrection_accuracy",
        )
        return [accuracy, *super().get_urls()]

    def accuracy_view(self, request: HttpRequest) -> HttpResponse:
        """The accuracy report for the chosen window; a bad window shows the form's errors."""
        form = DashboardWindowForm(request.GET or {"window": ACCURACY_WINDOW})
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": gettext("How good is the model?"),
            "opts": self.opts,
            "form": form,
        }
        if form.is_valid():
            context["panel"] = accuracy_panel(request, form.cleaned_data["range"])
        return render(request, "admin/inventory/accuracy.html", context)

    @admin.display(description=_("project"), ordering="project__name")
    def project_link(self, correction: InventoryCorrection) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:photos_project_change", args=[correction.project_id]),
            correction.project.name,
        )

    @admin.display(description=_("room"), ordering="room_label")
    def room(self, correction: InventoryCorrection) -> str:
        return correction.room_label or gettext("photo %(id)s") % {"id": correction.room_group[:8]}

    @admin.display(description=_("photo"))
    def photo_id(self, correction: InventoryCorrection) -> str:
        if correction.photo_id is None:
            return self.get_empty_value_display()
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:photos_photo_change", args=[correction.photo_id]),
            str(correction.photo_id),
        )

    @admin.display(description=_("before → after"))
    def change(self, correction: InventoryCorrection) -> str:
        return line_change(correction)
