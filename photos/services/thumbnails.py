"""Small JPEG renditions of stored photos for the staff admin, cached in the storage."""

from __future__ import annotations

import io
from typing import Any

from django.core.files.base import ContentFile
from PIL import Image, ImageOps
from pillow_heif import register_heif_opener

from photos.models import Photo

register_heif_opener()  # HEIC photos get JPEG thumbnails: browsers cannot show HEIC

#: Rendition name → longest edge in pixels. A closed set, so the cache cannot be grown at will.
THUMBNAIL_EDGES = {"small": 160, "large": 1280}
JPEG_QUALITY = 80


def thumbnail_name(*, photo: Photo, size: str) -> str:
    """Where the rendition is cached in the photo's storage (S3 adds its AWS_LOCATION prefix)."""
    return f"thumbs/{THUMBNAIL_EDGES[size]}/{photo.project_id}/{photo.pk}.jpg"


def thumbnail_render(source: Any, *, edge: int) -> bytes:
    """A JPEG whose longest edge is at most `edge`, EXIF orientation applied.

    `draft` makes the JPEG decoder scale by 1/2, 1/4 or 1/8 while decoding, so a 12 MP photo is
    never decoded at full size for a 160 px thumbnail (other formats ignore it).
    """
    with Image.open(source) as image:
        image.draft("RGB", (edge, edge))
        oriented = ImageOps.exif_transpose(image)
        oriented.thumbnail((edge, edge))
        buffer = io.BytesIO()
        oriented.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


def photo_thumbnail(*, photo: Photo, size: str) -> bytes:
    """The cached rendition of `photo`, made and stored under `thumbs/` on first use.

    Raises FileNotFoundError when the original is not in the storage. Two requests that make
    the same rendition at once both store it; the storage keeps one and we delete the other.
    """
    storage = photo.image.storage
    name = thumbnail_name(photo=photo, size=size)
    try:
        with storage.open(name, "rb") as cached:
            return bytes(cached.read())
    except FileNotFoundError:
        pass
    with storage.open(str(photo.image.name), "rb") as original:
        data = thumbnail_render(original, edge=THUMBNAIL_EDGES[size])
    saved = storage.save(name, ContentFile(data))
    if saved != name:  # another request stored it first; ours got a suffixed name
        storage.delete(saved)
    return data
