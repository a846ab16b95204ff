"""Listens to photos and inventory: each event they report goes into the outbox inside the
transaction of the state change (photos/signals.py, inventory/signals.py)."""

from __future__ import annotations

import uuid
from typing import Any

from django.dispatch import receiver

from inventory.api import InventorySerializer
from inventory.models import InventorySnapshot
from inventory.signals import inventory_updated
from photos.api.serializers import PhotoSerializer
from photos.models import Photo
from photos.signals import photo_done, photo_failed
from webhooks.events import webhook_event_emit


def _photo_data(photo_id: uuid.UUID) -> dict[str, Any]:
    # The body of GET /api/photos/{id}, read inside the transaction that changed the photo.
    return {"photo": PhotoSerializer(Photo.objects.get(pk=photo_id)).data}


@receiver(photo_done, dispatch_uid="webhooks.photo_done")
def photo_done_event(
    sender: Any, *, photo_id: uuid.UUID, project_id: uuid.UUID, **kwargs: Any
) -> None:
    webhook_event_emit(
        project_id=project_id, event_type="photo.done", data=lambda: _photo_data(photo_id)
    )


@receiver(photo_failed, dispatch_uid="webhooks.photo_failed")
def photo_error_event(
    sender: Any, *, photo_id: uuid.UUID, project_id: uuid.UUID, **kwargs: Any
) -> None:
    webhook_event_emit(
        project_id=project_id, event_type="photo.error", data=lambda: _photo_data(photo_id)
    )


@receiver(inventory_updated, dispatch_uid="webhooks.inventory_updated")
def inventory_updated_event(sender: Any, *, snapshot: InventorySnapshot, **kwargs: Any) -> None:
    # The body of GET /api/projects/{id}/inventory.
    webhook_event_emit(
        project_id=snapshot.project_id,
        event_type="inventory.updated",
        data=lambda: dict(InventorySerializer(snapshot).data),
    )
