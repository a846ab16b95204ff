"""Listens to photos: a DONE photo asks for a (coalesced) sync of its project's inventory."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from inventory.services import inventory_request_sync
from photos.signals import photo_done


@receiver(photo_done, dispatch_uid="inventory.photo_done")
def request_sync_on_photo_done(sender: Any, *, project_id: uuid.UUID, **kwargs: Any) -> None:
    # After the DONE commit, never inside it: a sync already running could otherwise read the
    # photos before this one is visible while our request, made in the same transaction, found
    # that sync's request still set and asked for nothing.
    transaction.on_commit(partial(inventory_request_sync, project_id=project_id))
