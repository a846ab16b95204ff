"""Inventory's admin actions: a sync request per project, from the project list
(`ProjectAdmin.sync_inventory`) or from the photo list (`sync_project_inventory`, which
`inventory/admin/__init__.py` registers with photos' `register_photo_action`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from inventory.services import inventory_request_sync
from photos.admin.actions import ACTION_BATCH_LIMIT, Tally
from photos.models import Photo


def _syncs_queued(count: int) -> str:
    return ngettext(
        "%(count)d inventory sync queued", "%(count)d inventory syncs queued", count
    ) % {"count": count}


def request_syncs(project_ids: Iterable[uuid.UUID]) -> Tally:
    """Ask for a sync of each project through `inventory_request_sync`, as the API does (no
    delay: someone is waiting for it); a sync already requested is not asked twice."""
    tally = Tally(_syncs_queued)
    for index, project_id in enumerate(project_ids):
        if index >= ACTION_BATCH_LIMIT:
            tally.left += 1
        elif inventory_request_sync(project_id=project_id, delay_ms=0):
            tally.done += 1
        else:
            tally.skipped[gettext("already queued")] += 1
    return tally


@admin.action(description=_("Sync the project's inventory"), permissions=["change"])
def sync_project_inventory(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Photo]
) -> None:
    """On the photo list: one sync request per project of the selected photos."""
    project_ids = queryset.order_by().values_list("project_id", flat=True).distinct()
    request_syncs(project_ids.iterator()).report(model_admin, request)
