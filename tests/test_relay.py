"""The relay pass: photo messages and inventory syncs owed by the database but absent from Redis."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from inventory.models import InventorySnapshot
from inventory.relay import inventory_relay
from inventory.services import inventory_request_sync
from operations.relay import relay_once
from photos.models import Photo, Project
from tests.conftest import flush_namespace
from tests.factories import make_photo, make_project

pytestmark = pytest.mark.django_db


def _done(project: Any, *, minutes_ago: int) -> Photo:
    photo = make_photo(project=project)
    Photo.objects.filter(pk=photo.pk).update(
        status=Photo.Status.DONE,
        processed_at=timezone.now() - timedelta(minutes=minutes_ago),
        items_count=2,
        volume_m3="1.00",
    )
    return photo


def test_a_sync_requested_but_lost_is_sent_again(
    redis_client: Any, inventory_queue: Any, django_capture_on_commit_callbacks: Any
) -> None:
    project = make_project()
    with django_capture_on_commit_callbacks(execute=True):
        assert inventory_request_sync(project_id=project.pk, delay_ms=0)
    flush_namespace(redis_client)  # Redis restarted empty
    Project.objects.filter(pk=project.pk).update(
        inventory_sync_requested_at=timezone.now() - timedelta(minutes=2)
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert inventory_relay(client=redis_client) == 1
        assert inventory_relay(client=redis_client) == 0  # its message is live now

    assert [m["args"] for m in inventory_queue.all()] == [[str(project.pk)]]


def test_a_project_behind_its_done_photos_gets_a_sync(
    redis_client: Any, inventory_queue: Any, django_capture_on_commit_callbacks: Any
) -> None:
    behind, up_to_date, fresh = make_project(), make_project(), make_project()
    _done(behind, minutes_ago=5)  # the worker died before asking for the sync
    _done(up_to_date, minutes_ago=5)
    InventorySnapshot.objects.create(project=up_to_date, photo_count=1)
    _done(fresh, minutes_ago=0)  # inside the grace period: its own request may be on its way

    with django_capture_on_commit_callbacks(execute=True):
        assert inventory_relay(client=redis_client) == 1

    assert [m["args"] for m in inventory_queue.all()] == [[str(behind.pk)]]


def test_relay_once_resends_photos_and_syncs(
    redis_client: Any,
    photo_queue: Any,
    inventory_queue: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    owed = make_photo()
    Photo.objects.filter(pk=owed.pk).update(queued_at=timezone.now() - timedelta(minutes=1))
    _done(make_project(), minutes_ago=3)

    with django_capture_on_commit_callbacks(execute=True):
        assert relay_once() == (1, 1, 0)

    assert [m["args"] for m in photo_queue.ready()] == [[str(owed.pk)]]
    assert len(inventory_queue.all()) == 1
