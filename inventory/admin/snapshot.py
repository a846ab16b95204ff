"""The inventory snapshots' admin: read-only history, with each snapshot's rooms, its
difference from the previous one, and its cube sheet (PDF, CSV) in the staff's language."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from infra.admin_tools import CappedCountPaginator, search_by_uuid, signed
from inventory.cubesheet import FORMATS, Format, cubesheet_render, cubesheet_response
from inventory.diff import snapshot_diff, snapshot_previous
from inventory.models import InventorySnapshot
from photos.admin.filters import ProjectListFilter
from photos.rooms import room_type_label


def snapshots_url(project_id: Any) -> str:
    """The snapshot list, filtered to one project."""
    return (
        reverse("admin:inventory_inventorysnapshot_changelist")
        + "?"
        + urlencode({ProjectListFilter.parameter_name: str(project_id)})
    )


def cube_sheet_links(snapshot_id: Any) -> list[tuple[str, str]]:
    """(label, URL) of the snapshot's cube sheet in each format, for a page's object tools."""
    labels = {"pdf": gettext("Cube sheet (PDF)"), "csv": gettext("Cube sheet (CSV)")}
    return [
        (
            labels[fmt],
            reverse("admin:inventory_inventorysnapshot_cubesheet", args=[snapshot_id, fmt]),
        )
        for fmt in FORMATS
    ]


SNAPSHOT_FIELDS = (
    "project_link",
    "created_at",
    "total_items",
    "total_volume",
    "photo_count",
    "previous_snapshot",
    "history",
)


@admin.register(InventorySnapshot)
class InventorySnapshotAdmin(admin.ModelAdmin[InventorySnapshot]):
    """Read-only: snapshots are history, written by syncs only."""

    list_display = [
        "created_at",
        "project_name",
        "total_items",
        "total_volume",
        "photo_count",
        "items_change",
        "volume_change",
    ]
    list_filter = [ProjectListFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["project"]
    search_fields = ["project__name"]
    search_help_text = _("A snapshot or project id (exact), or part of the project's name.")
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = SNAPSHOT_FIELDS
    readonly_fields = SNAPSHOT_FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet[InventorySnapshot]:
        previous = InventorySnapshot.objects.filter(
            project=OuterRef("project"), created_at__lt=OuterRef("created_at")
        ).order_by("-created_at")
        return (
            super()
            .get_queryset(request)
            .annotate(
                previous_items=Subquery(previous.values("total_items")[:1]),
                previous_volume=Subquery(previous.values("total_volume")[:1]),
            )
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[InventorySnapshot], search_term: str
    ) -> tuple[QuerySet[InventorySnapshot], bool]:
        by_id = search_by_uuid(queryset, search_term, ["pk", "project_id"])
        if by_id is not None:
            return by_id, False
        return super().get_search_results(request, queryset, search_term)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<uuid:snapshot_id>/cube-sheet.<str:fmt>",
                self.admin_site.admin_view(self.cube_sheet_view),
                name="inventory_inventorysnapshot_cubesheet",
            ),
            *super().get_urls(),
        ]

    def cube_sheet_view(self, request: HttpRequest, snapshot_id: Any, fmt: str) -> HttpResponse:
        """The snapshot's cube sheet, in the staff's language (staff only: admin_view)."""
        snapshot = (
            InventorySnapshot.objects.select_related("project").filter(pk=snapshot_id).first()
        )
        if snapshot is None or fmt not in FORMATS:
            raise Http404
        if not self.has_view_permission(request, snapshot):
            raise PermissionDenied
        return cubesheet_response(cubesheet_render(snapshot=snapshot, fmt=cast(Format, fmt)))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("project"), ordering="project__name")
    def project_name(self, snapshot: InventorySnapshot) -> str:
        return snapshot.project.name

    @admin.display(description=_("project"))
    def project_link(self, snapshot: InventorySnapshot) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:photos_project_change", args=[snapshot.project_id]),
            snapshot.project.name,
        )

    @admin.display(description=_("Δ items"))
    def items_change(self, snapshot: InventorySnapshot) -> str:
        before = getattr(snapshot, "previous_items", None)
        if before is None:
            return gettext("first")
        return signed(snapshot.total_items - before)

    @admin.display(description=_("Δ volume (m³)"))
    def volume_change(self, snapshot: InventorySnapshot) -> str:
        before = getattr(snapshot, "previous_volume", None)
        if before is None:
            return gettext("first")
        return signed(Decimal(snapshot.total_volume) - Decimal(before))

    @admin.display(description=_("previous snapshot"))
    def previous_snapshot(self, snapshot: InventorySnapshot) -> str:
        previous = snapshot_previous(snapshot)
        if previous is None:
            return self.get_empty_value_display()
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:inventory_inventorysnapshot_change", args=[previous.pk]),
            previous.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )

    @admin.display(description=_("history"))
    def history(self, snapshot: InventorySnapshot) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            snapshots_url(snapshot.project_id),
            gettext("All inventory snapshots of this project"),
        )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: InventorySnapshot | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context["cube_sheet_links"] = cube_sheet_links(obj.pk)
            diff = snapshot_diff(obj, snapshot_previous(obj))
            context["snapshot_rooms"] = [
                {
                    **room,
                    "label": room.get("room") or "",
                    "type_label": room_type_label(room.get("roomType")),
                    # Snapshots from before item lines have no `items`.
                    "corrected_lines": sum(
                        1
                        for line in room.get("items") or []
                        if isinstance(line, dict) and line.get("corrected")
                    ),
                }
                for room in (obj.rooms if isinstance(obj.rooms, list) else [])
                if isinstance(room, dict) and room
            ]
            context["snapshot_diff"] = diff
            context["diff_rows"] = [
                {
                    "room_type": room.room_type,
                    "room_label": room_type_label(room.room_type),
                    "items_before": room.items_before,
                    "items_after": room.items_after,
                    "items_delta": signed(room.items_delta),
                    "volume_before": room.volume_before,
                    "volume_after": room.volume_after,
                    "volume_delta": signed(room.volume_delta),
                }
                for room in diff.rooms
            ]
            context["diff_items_delta"] = signed(diff.items_delta)
            context["diff_volume_delta"] = signed(diff.volume_delta)
        return super().render_change_form(request, context, add, change, form_url, obj)
