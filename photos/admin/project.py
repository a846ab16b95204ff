"""A project's photos as its admin page shows them: counts by status, and links to the photo list
filtered to the project.

The project admin itself is `inventory/admin/project.py`: a project's page shows its photos and
its inventory, and only inventory may import both (photos never imports inventory). The model's
app label stays `photos`, so its URLs are `admin:photos_project_*`.
"""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.http import urlencode

from photos.admin.filters import ProjectListFilter
from photos.admin.photo import STATUS_COLOURS
from photos.models import Photo, Project


def photos_with_status(status: str) -> Coalesce:
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


def photo_list_url(project: Project, **filters: str) -> str:
    """The photo list, filtered to the project (and to `filters`)."""
    query = {ProjectListFilter.parameter_name: str(project.pk), **filters}
    return reverse("admin:photos_photo_changelist") + "?" + urlencode(query)


def photo_status_links(project: Project, counts: dict[Photo.Status, int]) -> str:
    """ "pending: 2, processing: 0, …", each count linked to the project's photos in that status
    and coloured as the photo list colours the status."""
    return format_html_join(
        ", ",
        '<a href="{}" style="color: {}">{}: {}</a>',
        (
            (
                photo_list_url(project, status__exact=status),
                STATUS_COLOURS[status],
                status.label,
                n,
            )
            for status, n in counts.items()
        ),
    )
