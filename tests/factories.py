"""Small factories for test data."""

from __future__ import annotations

import io
import itertools
import random
from typing import Any

from django.contrib.auth import get_user_model
from PIL import Image
from rest_framework.authtoken.models import Token

from photos.items import photo_items_replace
from photos.models import Photo, PhotoItem, Project
from photos.services.uploads import photo_create, project_create

_counter = itertools.count(1)


# Pixel noise for test images, from a fixed seed: a test that depends on what the noise happens
# to be (a JPEG that Pillow decodes without its end marker, one draw in sixteen) fails on every
# run or on none, never now and then.
_NOISE = random.Random(20261128)


def noise_bytes(count: int) -> bytes:
    """`count` bytes of reproducible noise (the same sequence in every run of the same tests)."""
    return _NOISE.randbytes(count)


def image_bytes(*, width: int = 320, height: int = 240, fmt: str = "JPEG", seed: int = 0) -> bytes:
    """A real image; `seed` changes its pixels, and with them the fake provider's answer."""
    image = Image.new("RGB", (width, height), ((seed * 37) % 256, (seed * 91) % 256, 120))
    for x in range(0, width, 16):
        image.putpixel((x, (x + seed) % height), (seed % 256, 10, 200))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def make_user(*, staff: bool = False, **fields: Any) -> Any:
    number = next(_counter)
    return get_user_model().objects.create_user(
        username=fields.pop("username", f"user{number}"),
        password="pw",
        is_staff=staff,
        **fields,
    )


def make_token(user: Any) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def make_project(*, owner: Any | None = None, name: str = "Move") -> Project:
    return project_create(owner=owner or make_user(), name=name)


def make_photo(
    *,
    project: Project | None = None,
    room_type: str | None = None,
    room: str | None = None,
    seed: int | None = None,
    enqueue: bool = False,
) -> Photo:
    data = image_bytes(seed=next(_counter) if seed is None else seed)
    photo, _ = photo_create(
        project=project or make_project(),
        data=data,
        room_type=room_type,
        room=room,
        enqueue=enqueue,
    )
    return photo


def store_analysis(photo: Photo, analysis: Any, **fields: Any) -> Photo:
    """`photo` with `analysis` (and `fields`, e.g. a status) stored, and, DONE, its item rows
    written as a DONE writes them (photos/items.py): a photo the pipeline analysed, or analysed
    again. Only a DONE photo has rows. The photo is read back."""
    Photo.objects.filter(pk=photo.pk).update(analysis=analysis, **fields)
    photo.refresh_from_db()
    if photo.status == Photo.Status.DONE:
        photo_items_replace(
            photo_id=photo.pk,
            project_id=photo.project_id,
            room=photo.room_group,
            analysis=analysis,
        )
    else:
        PhotoItem.objects.filter(photo=photo).delete()
    return photo


def analysis_item(key: str, quantity: int, volume: float, **fields: Any) -> dict[str, Any]:
    """One item of a photo's `analysis`, as the pipeline stores it (tests of inventories)."""
    return {
        "key": key,
        "name": fields.pop("name", key.replace("_", " ")),
        "category": "furniture",
        "quantity": quantity,
        "volume_m3": volume,
        "volumeSource": "catalogue",
        "confidence": 0.9,
        "fragile": False,
        "dismantle": False,
        **fields,
    }
