"""The photo's JSON is written out by hand (PhotoSerializer.to_representation); its declared fields
are the schema. These tests check that both say the same, byte for byte, in every state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from rest_framework import serializers

from photos.api.serializers import PhotoSerializer
from photos.models import Photo
from tests.factories import make_photo

pytestmark = pytest.mark.django_db


def _by_fields(photo: Photo) -> dict[str, Any]:
    """What DRF's own fields output for `photo` (ModelSerializer's representation)."""
    serializer = PhotoSerializer(photo)
    return serializers.ModelSerializer.to_representation(serializer, photo)


def _assert_same(photo: Photo) -> None:
    written = PhotoSerializer(photo).data
    assert json.dumps(written) == json.dumps(_by_fields(photo))
    assert list(written) == list(PhotoSerializer().fields)


def test_a_new_photo_in_memory() -> None:
    _assert_same(make_photo())


def test_a_done_photo_read_back() -> None:
    photo = make_photo(room_type="kitchen")
    Photo.objects.filter(pk=photo.pk).update(
        status=Photo.Status.DONE,
        analysis={"items": [{"name": "chair", "quantity": 2}], "roomType": "kitchen"},
        processed_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        attempts=1,
    )
    _assert_same(Photo.objects.get(pk=photo.pk))


def test_an_error_photo_and_a_datetime_in_another_zone() -> None:
    photo = make_photo()
    photo.status = Photo.Status.ERROR
    photo.error_code = "PROVIDER_DOWN"
    photo.error_message = "The provider did not answer."
    photo.attempts = 3
    photo.processed_at = datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    _assert_same(photo)
