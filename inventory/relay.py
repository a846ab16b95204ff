"""The inventory side of the relay: syncs that were asked for (or should have been) but whose
message is nowhere — lost with Redis, or never sent because the process died after a commit."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from infra.broker import INVENTORY_QUEUE, live_message_ids
from inventory.models import InventorySnapshot
from inventory.services import inventory_request_sync, inventory_send_sync
from photos.models import Photo, Project

#: How far back the relay looks for DONE photos that no snapshot includes yet.
LOOKBACK = timedelta(days=1)


def inventory_relay(*, client: Any, grace: timedelta | None = None) -> int:
    """Re-send owed syncs that have no live message; returns how many were sent."""
    now = timezone.now()
    grace = grace if grace is not None else timedelta(seconds=settings.PHOTO_RELAY_GRACE_SECONDS)
    live = live_message_ids(client, INVENTORY_QUEUE)
    sent = 0

    # 1. Requested, but the message is gone.
    owed = Project.objects.filter(inventory_sync_requested_at__lt=now - grace).values_list(
        "id", "inventory_sync_requested_at"
    )
    for project_id, requested_at in owed:
        if str(project_id) in live:
            continue
        with transaction.atomic():
            taken = Project.objects.filter(
                pk=project_id, inventory_sync_requested_at=requested_at
            ).update(inventory_sync_requested_at=now)
            if taken:
                transaction.on_commit(partial(inventory_send_sync, str(project_id), None))
                sent += 1

    # 2. Never requested: a photo reached DONE but the process died before asking. Its project's
    #    newest snapshot predates the photo, and no request is pending.
    newer_than_snapshot = Photo.objects.filter(
        project=OuterRef("pk"),
        status=Photo.Status.DONE,
        processed_at__gte=now - LOOKBACK,
        processed_at__lt=now - grace,
    ).exclude(
        Exists(
            InventorySnapshot.objects.filter(
                project=OuterRef("project"), created_at__gt=OuterRef("processed_at")
            )
        )
    )
    behind = Project.objects.filter(
        Q(inventory_sync_requested_at__isnull=True), Exists(newer_than_snapshot)
    ).values_list("id", flat=True)
    for project_id in behind:
        if str(project_id) not in live and inventory_request_sync(project_id=project_id):
            sent += 1
    return sent
