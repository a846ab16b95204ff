"""Inventory's part of the staff console.

Dependencies flow one way (inventory → photos): photos' admin cannot offer "sync the inventory"
or show a project's inventories, so this module subclasses photos' `PhotoAdmin` and
`ProjectAdmin` with what inventory knows, and registers the subclasses in their place. Explicit
subclasses keep those admins typed and readable in one place, unlike appending to another
admin's `actions` at import time; importing `photos.admin` first guarantees the base
registration exists whatever the order in which the admin modules are discovered.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from infra.admin_tools import CappedCountPaginator, search_by_uuid, signed
from inventory.diff import snapshot_diff, snapshot_previous
from inventory.models import InventorySnapshot, VolumeCatalogueEntry
from inventory.services import inventory_request_sync
from photos import admin as photos_admin
from photos.admin.actions import ACTION_BATCH_LIMIT, Tally
from photos.admin.filters import ProjectListFilter, room_type_label
from photos.models import Photo, Project


def _syncs_queued(count: int) -> str:
    return ngettext(
        "%(count)d inventory sync queued", "%(count)d inventory syncs queued", count
    ) % {"count": count}


def request_syncs(project_ids: Iterable[uuid.UUID]) -> Tally:
    """Ask for a sync of each project through `inventory_request_sync`, as the API does (no
    delay: someone is waiting for it); a sync already requested is not asked twice."""
    tally = Tally(_syncs_queued)
    for index, project_id in enumerate(project_ids):
        if index >= ACTION_BATCH_LIMIT:
            tally.left += 1
        elif inventory_request_sync(project_id=project_id, delay_ms=0):
            tally.done += 1
        else:
            tally.skipped[gettext("already queued")] += 1
    return tally


def _snapshots_url(project_id: Any) -> str:
    return (
        reverse("admin:inventory_inventorysnapshot_changelist")
        + "?"
        + urlencode({ProjectListFilter.parameter_name: str(project_id)})
    )


# --- photos and projects, with inventory's additions --------------------------------------------


class PhotoAdmin(photos_admin.PhotoAdmin):
    actions = [*photos_admin.PhotoAdmin.actions, "sync_project_inventory"]

    @admin.action(description=_("Sync the project's inventory"), permissions=["change"])
    def sync_project_inventory(self, request: HttpRequest, queryset: QuerySet[Photo]) -> None:
        project_ids = queryset.order_by().values_list("project_id", flat=True).distinct()
        request_syncs(project_ids.iterator()).report(self, request)


class ProjectAdmin(photos_admin.ProjectAdmin):
    list_display = [*photos_admin.ProjectAdmin.list_display, "latest_inventory"]
    fields = [*photos_admin.ProjectAdmin.fields, "latest_inventory", "inventory_history"]
    readonly_fields = [
        *photos_admin.ProjectAdmin.readonly_fields,
        "latest_inventory",
        "inventory_history",
    ]
    actions = ["sync_inventory"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        # Correlated subqueries on the (project, -created_at) index, for the page's rows only.
        latest = InventorySnapshot.objects.filter(project=OuterRef("pk")).order_by("-created_at")
        return (
            super()
            .get_queryset(request)
            .annotate(
                latest_snapshot_id=Subquery(latest.values("pk")[:1]),
                latest_items=Subquery(latest.values("total_items")[:1]),
                latest_volume=Subquery(latest.values("total_volume")[:1]),
            )
        )

    @admin.display(description=_("latest inventory"), ordering="latest_volume")
    def latest_inventory(self, project: Project) -> str:
        snapshot_id = getattr(project, "latest_snapshot_id", None)
        if snapshot_id is None:
            return self.get_empty_value_display()
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:inventory_inventorysnapshot_change", args=[snapshot_id]),
            gettext("%(items)d items, %(volume)s m³")
            % {
                "items": project.latest_items,  # type: ignore[attr-defined]
                "volume": number_format(project.latest_volume),  # type: ignore[attr-defined]
            },
        )

    @admin.display(description=_("inventory history"))
    def inventory_history(self, project: Project) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            _snapshots_url(project.pk),
            gettext("All inventory snapshots of this project"),
        )

    @admin.action(description=_("Sync the inventory"), permissions=["change"])
    def sync_inventory(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        project_ids = queryset.order_by().values_list("pk", flat=True)
        request_syncs(project_ids.iterator()).report(self, request)


admin.site.unregister(Photo)
admin.site.register(Photo, PhotoAdmin)
admin.site.unregister(Project)
admin.site.register(Project, ProjectAdmin)


# --- snapshots ----------------------------------------------------------------------------------


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
            _snapshots_url(snapshot.project_id),
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
            diff = snapshot_diff(obj, snapshot_previous(obj))
            context["snapshot_rooms"] = [
                {**room, "label": room_type_label(room.get("roomType"))}
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


# --- the volume catalogue -----------------------------------------------------------------------


@admin.register(VolumeCatalogueEntry)
class VolumeCatalogueEntryAdmin(admin.ModelAdmin[VolumeCatalogueEntry]):
    """Staff edit the volumes movers quote from; the next analysed photo uses the new figures."""

    list_display = [
        "key",
        "label_en",
        "label_fr",
        "category",
        "volume_m3",
        "fragile",
        "dismantle",
        "source",
    ]
    list_editable = ["volume_m3"]
    list_filter = ["category", "fragile", "dismantle"]
    search_fields = ["key", "label_en", "label_fr"]
    readonly_fields = ["updated_at"]
