"""Read-side queries of the photos app, scoped to an owner."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from photos.models import Photo, Project


def _uuid_or_404(value: object, what: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise Http404(f"No such {what}.") from None


def project_for_owner(*, owner: Any, project_id: object) -> Project:
    """The owner's project, or 404 as if it did not exist (also for someone else's)."""
    pk = _uuid_or_404(project_id, "project")
    project = Project.objects.filter(pk=pk, owner=owner).first()
    if project is None:
        raise Http404("No such project.")
    return project


def photo_for_owner(*, owner: Any, photo_id: object) -> Photo:
    """The owner's photo, or 404 as if it did not exist (also for someone else's)."""
    pk = _uuid_or_404(photo_id, "photo")
    try:
        # get(), not filter().first(): a primary key needs no ORDER BY, and the ORM builds this
        # statement for every poll.
        return Photo.objects.get(pk=pk, project__owner=owner)
    except Photo.DoesNotExist:
        raise Http404("No such photo.") from None


def photos_for_owner(*, owner: Any) -> QuerySet[Photo]:
    return Photo.objects.filter(project__owner=owner)


def project_photo_counts(*, project: Project) -> dict[str, int]:
    """Photos of the project by status, every status present, in one query."""
    counts = Photo.objects.filter(project=project).aggregate(
        **{status: Count("id", filter=Q(status=status)) for status in Photo.Status.values}
    )
    return {status: counts[status] or 0 for status in Photo.Status.values}
