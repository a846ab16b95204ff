"""The project admin: each project's photo counts by status, linked to the photo list."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from infra.admin_tools import CappedCountPaginator, save_changed_fields, search_by_uuid
from photos.admin.filters import ProjectListFilter
from photos.admin.photo import STATUS_COLOURS
from photos.models import Photo, Project


def _photos_with_status(status: str) -> Coalesce:
    """The project's photo count in `status`: a correlated subquery on the (project, status)
    index, computed for the page's rows only (a JOIN + GROUP BY would aggregate every photo)."""
    count = (
        Photo.objects.filter(project=OuterRef("pk"), status=status)
        .order_by()
        .values("project")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(count, output_field=IntegerField()), 0)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin[Project]):
    list_display = [
        "name",
        "owner_name",
        "created_at",
        "pending_photos",
        "processing_photos",
        "done_photos",
        "error_photos",
        "photos_link",
    ]
    list_select_related = ["owner"]
    list_filter = [("created_at", admin.DateFieldListFilter)]
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
        "created_at",
        "photo_counts",
        "photos_link",
    ]
    readonly_fields = ["project_id", "created_at", "photo_counts", "photos_link"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                pending_count=_photos_with_status(Photo.Status.PENDING),
                processing_count=_photos_with_status(Photo.Status.PROCESSING),
                done_count=_photos_with_status(Photo.Status.DONE),
                error_count=_photos_with_status(Photo.Status.ERROR),
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
            _photo_list_url(project, status__exact=Photo.Status.ERROR),
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
        return _status_links(project, counts)

    @admin.display(description=_("photos"))
    def photos_link(self, project: Project) -> str:
        return format_html('<a href="{}">{}</a>', _photo_list_url(project), gettext("photos"))


def _photo_list_url(project: Project, **filters: str) -> str:
    query = {ProjectListFilter.parameter_name: str(project.pk), **filters}
    return reverse("admin:photos_photo_changelist") + "?" + urlencode(query)


def _status_links(project: Project, counts: dict[Photo.Status, int]) -> str:
    return format_html_join(
        ", ",
        '<a href="{}" style="color: {}">{}: {}</a>',
        (
            (
                _photo_list_url(project, status__exact=status),
                STATUS_COLOURS[status],
                status.label,
                n,
            )
            for status, n in counts.items()
        ),
    )
