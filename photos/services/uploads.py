"""Creating projects and photos."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import transaction

from imaging.validation import image_inspect
from photos.lifecycle import EnqueueResult, photo_enqueue
from photos.models import Photo, Project


class PriorityDenied(PermissionError):
    """Only staff may create a high-priority project."""


def project_create(*, owner: User, name: str, priority: str = Project.Priority.NORMAL) -> Project:
    """A new, empty project for `owner`. A `high` priority (its photos go first: docs/
    architecture.md, "Provider quotas") only for a staff owner, else `PriorityDenied`."""
    if priority == Project.Priority.HIGH and not owner.is_staff:
        raise PriorityDenied("Only staff accounts can create a high-priority project.")
    return Project.objects.create(owner=owner, name=name, priority=priority)


def photo_create(
    *,
    project: Project,
    data: bytes,
    room_type: str | None = None,
    room: str | None = None,
    enqueue: bool = False,
) -> tuple[Photo, EnqueueResult | None]:
    """Validate and store an uploaded image; optionally enqueue its analysis.

    `room` is the household's label for the room ("Chambre 2"): photos of a project with the same
    label are views of one room in its inventory. Raises `imaging.validation.ImageRejected`
    before anything is stored.
    """
    info = image_inspect(
        data,
        max_bytes=settings.UPLOAD_MAX_BYTES,
        max_pixels=settings.UPLOAD_MAX_PIXELS,
        min_edge=settings.UPLOAD_MIN_EDGE,
    )
    photo = Photo(
        project=project,
        room_type=room_type or None,
        room_label=(room or "").strip(),
        image_format=info.extension,
        image_bytes=info.size_bytes,
        image_width=info.width,
        image_height=info.height,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    # The file is written before the row; if the row fails, remove the file so nothing is left.
    photo.image.save("upload", ContentFile(data), save=False)
    try:
        with transaction.atomic():
            photo.save(force_insert=True)
            result = photo_enqueue(photo=photo) if enqueue else None
    except BaseException:
        photo.image.delete(save=False)
        raise
    return photo, result
