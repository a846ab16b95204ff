"""Listens to photos: a DONE photo asks for a (coalesced) sync of its project's inventory."""

from __future__ import annotations

import uuid
from typing import Any

from django.dispatch import receiver

from inventory.services import inventory_request_sync
from photos.signals import photo_done


@receiver(photo_done, dispatch_uid="inventory.photo_done")
def request_sync_on_photo_done(sender: Any, *, project_id: uuid.UUID, **kwargs: Any) -> None:
    inventory_request_sync(project_id=project_id)
