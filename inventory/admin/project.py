"""The project admin, registered here rather than in photos: a project's page shows its photos
(counts by status, from `photos.admin.project`) and its inventory (the latest snapshot, the
history, a sync action), and only inventory may import both. The model's app label stays
`photos`, so the URLs are `admin:photos_project_*` and the templates `admin/photos/…`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from infra.admin_tools import CappedCountPaginator, save_changed_fields, search_by_uuid
from inventory.admin.actions import request_syncs
from inventory.admin.correcting import project_inventory_view
from inventory.admin.snapshot import cube_sheet_links, snapshots_url
from inventory.models import InventorySnapshot
from photos.admin.photo import STATUS_COLOURS
from photos.admin.project import photo_list_url, photo_status_links, photos_with_status
from photos.models import Photo, Project


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin[Project]):
    """Projects with their photos by status and their latest inventory."""

    list_display = [
        "name",
        "owner_name",
        "priority",
        "created_at",
        "pending_photos",
        "processing_photos",
        "done_photos",
        "error_photos",
        "photos_link",
        "latest_inventory",
    ]
    list_select_related = ["owner"]
    list_filter = ["priority", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "owner__username"]
    search_help_text = _("A project id (exact), or part of its name or of its owner's username.")
    raw_id_fields = ["owner"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = [
        "project_id",
        "name",
        "owner",
        "priority",
        "created_at",
        "photo_counts",
        "photos_link",
        "latest_inventory",
        "inventory_history",
        "inventory_corrections",
    ]
    readonly_fields = [
        "project_id",
        "created_at",
        "photo_counts",
        "photos_link",
        "latest_inventory",
        "inventory_history",
        "inventory_corrections",
    ]
    actions = ["sync_inventory"]

    def get_urls(self) -> list[URLPattern]:
        view = partial(project_inventory_view, model_admin=self)
        inventory = path(
            "<path:object_id>/inventory/",
            self.admin_site.admin_view(view),
            name="photos_project_inventory",
        )
        return [inventory, *super().get_urls()]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        # Correlated subqueries on the (project, status) and (project, -created_at) indexes,
        # for the page's rows only.
        latest = InventorySnapshot.objects.filter(project=OuterRef("pk")).order_by("-created_at")
        return (
            super()
            .get_queryset(request)
            .annotate(
                pending_count=photos_with_status(Photo.Status.PENDING),
                processing_count=photos_with_status(Photo.Status.PROCESSING),
                done_count=photos_with_status(Photo.Status.DONE),
                error_count=photos_with_status(Photo.Status.ERROR),
                latest_snapshot_id=Subquery(latest.values("pk")[:1]),
                latest_items=Subquery(latest.values("total_items")[:1]),
                latest_volume=Subquery(latest.values("total_volume")[:1]),
            )
        )

    def save_model(self, request: HttpRequest, obj: Project, form: Any, change: bool) -> None:
        if change:
            save_changed_fields(obj, form.changed_data)
        else:
            super().save_model(request, obj, form, change)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Project], search_term: str
    ) -> tuple[QuerySet[Project], bool]:
        by_id = search_by_uuid(queryset, search_term, ["pk"])
        if by_id is not None:
            return by_id, False
        return super().get_search_results(request, queryset, search_term)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "owner":
            kwargs.setdefault("label", capfirst(_("owner")))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description=_("ID"))
    def project_id(self, project: Project) -> str:
        return str(project.pk)

    @admin.display(description=_("owner"), ordering="owner__username")
    def owner_name(self, project: Project) -> str:
        return project.owner.get_username()

    @admin.display(description=_("pending"), ordering="pending_count")
    def pending_photos(self, project: Project) -> int:
        return int(getattr(project, "pending_count", 0))

    @admin.display(description=_("processing"), ordering="processing_count")
    def processing_photos(self, project: Project) -> int:
        return int(getattr(project, "processing_count", 0))

    @admin.display(description=_("done"), ordering="done_count")
    def done_photos(self, project: Project) -> int:
        return int(getattr(project, "done_count", 0))

    @admin.display(description=_("error"), ordering="error_count")
    def error_photos(self, project: Project) -> str:
        count = int(getattr(project, "error_count", 0))
        if not count:
            return "0"
        return format_html(
            '<a href="{}" style="color: {}">{}</a>',
            photo_list_url(project, status__exact=Photo.Status.ERROR),
            STATUS_COLOURS[Photo.Status.ERROR],
            count,
        )

    @admin.display(description=_("photos by status"))
    def photo_counts(self, project: Project) -> str:
        counts = {
            Photo.Status.PENDING: getattr(project, "pending_count", 0),
            Photo.Status.PROCESSING: getattr(project, "processing_count", 0),
            Photo.Status.DONE: getattr(project, "done_count", 0),
            Photo.Status.ERROR: getattr(project, "error_count", 0),
        }
        return photo_status_links(project, counts)

    @admin.display(description=_("photos"))
    def photos_link(self, project: Project) -> str:
        return format_html('<a href="{}">{}</a>', photo_list_url(project), gettext("photos"))

    # --- inventory ---

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
            snapshots_url(project.pk),
            gettext("All inventory snapshots of this project"),
        )

    @admin.display(description=_("corrections"))
    def inventory_corrections(self, project: Project) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:photos_project_inventory", args=[project.pk]),
            gettext("Correct the inventory (lines, quantities, missed items)"),
        )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Project | None = None,
    ) -> HttpResponse:
        # The latest snapshot's cube sheet (templates/admin/photos/project/change_form.html).
        snapshot_id = getattr(obj, "latest_snapshot_id", None)
        if snapshot_id is not None and request.user.has_perm("inventory.view_inventorysnapshot"):
            context["cube_sheet_links"] = cube_sheet_links(snapshot_id)
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description=_("Sync the inventory"), permissions=["change"])
    def sync_inventory(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        project_ids = queryset.order_by().values_list("pk", flat=True)
        request_syncs(project_ids.iterator()).report(self, request)
