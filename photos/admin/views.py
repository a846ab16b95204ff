"""Staff-only image views of the photo admin: the original and cached JPEG thumbnails.

Both read through Django's storage API, so they serve the same bytes from the file system or
from S3 (no presigned URL leaves the server, and the bucket can stay private). They are wired
in `PhotoAdmin.get_urls` (photos/admin/photo.py), behind `admin_site.admin_view`: anonymous and
non-staff users are redirected to the admin login, staff without the view permission get 403.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

from photos.models import Photo
from photos.services.thumbnails import THUMBNAIL_EDGES, photo_thumbnail

CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "heic": "image/heic",
}
#: Photos never change once stored, so browsers may keep what they fetched (privately).
ORIGINAL_MAX_AGE_S = 3600
THUMBNAIL_MAX_AGE_S = 7 * 24 * 3600


def _viewable_photo(model_admin: ModelAdmin[Photo], request: HttpRequest, photo_id: Any) -> Photo:
    photo = Photo.objects.filter(pk=photo_id).first()
    if photo is None or not photo.image:
        raise Http404("no such photo")
    if not model_admin.has_view_permission(request, photo):
        raise PermissionDenied
    return photo


def photo_image_view(
    request: HttpRequest, photo_id: Any, *, model_admin: ModelAdmin[Photo]
) -> FileResponse:
    """The original upload, streamed from the storage."""
    photo = _viewable_photo(model_admin, request, photo_id)
    try:
        handle = photo.image.storage.open(str(photo.image.name), "rb")
    except FileNotFoundError as exc:
        raise Http404("the image is missing from the storage") from exc
    response = FileResponse(
        handle,
        content_type=CONTENT_TYPES.get(photo.image_format, "application/octet-stream"),
        filename=f"{photo.pk}.{photo.image_format or 'bin'}",
    )
    patch_cache_control(response, private=True, max_age=ORIGINAL_MAX_AGE_S)
    return response


def photo_thumbnail_view(
    request: HttpRequest, photo_id: Any, size: str, *, model_admin: ModelAdmin[Photo]
) -> HttpResponse:
    """A JPEG rendition (`small` for lists, `large` for the detail page), cached under thumbs/."""
    if size not in THUMBNAIL_EDGES:
        raise Http404("unknown thumbnail size")
    photo = _viewable_photo(model_admin, request, photo_id)
    try:
        data = photo_thumbnail(photo=photo, size=size)
    except FileNotFoundError as exc:
        raise Http404("the image is missing from the storage") from exc
    response = HttpResponse(data, content_type="image/jpeg")
    patch_cache_control(response, private=True, max_age=THUMBNAIL_MAX_AGE_S)
    return response
