"""What the photo admin's actions do: queue photos through the services the API uses, and count
what was sent and what was skipped, for one `message_user` line.

Also the photo list's extension point: an app photos may not import (inventory, whose "Sync the
project's inventory" acts on the selected photos' projects) registers an action here with
`register_photo_action`, and `PhotoAdmin.actions` lists the registered ones after its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponseBase
from django.utils.translation import gettext, ngettext

from photos.lifecycle import EnqueueStatus, photo_enqueue
from photos.models import Photo

#: At most this many photos (or projects) are queued per action run, so a request ends well
#: before the web server's timeout; the message says how many are left for another run
#: (`manage.py requeue_failed` has no limit).
ACTION_BATCH_LIMIT = 1000

#: An admin action on photos, as `@admin.action` decorates it.
PhotoAction = Callable[
    [admin.ModelAdmin[Photo], HttpRequest, QuerySet[Photo]], HttpResponseBase | None
]

_registered: list[PhotoAction] = []


def register_photo_action(action: PhotoAction) -> PhotoAction:
    """Offer `action` on the photo list too (its name is its function's name). Registering the
    same function twice adds it once."""
    if action not in _registered:
        _registered.append(action)
    return action


def registered_photo_actions() -> list[PhotoAction]:
    return list(_registered)


@dataclass
class Tally:
    """What an action did: how many requests it sent and why it skipped the others."""

    done_text: Callable[[int], str]  # "3 photos queued"
    done: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    left: int = 0

    def message(self) -> str:
        parts = [self.done_text(self.done)]
        total_skipped = sum(self.skipped.values())
        if total_skipped:
            if len(self.skipped) == 1:
                reasons = next(iter(self.skipped))
            else:
                reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.skipped.items()))
            parts.append(
                ngettext(
                    "%(count)d skipped (%(reasons)s)",
                    "%(count)d skipped (%(reasons)s)",
                    total_skipped,
                )
                % {"count": total_skipped, "reasons": reasons}
            )
        if self.left:
            parts.append(
                ngettext(
                    "%(count)d left for another run (at most %(limit)d per run)",
                    "%(count)d left for another run (at most %(limit)d per run)",
                    self.left,
                )
                % {"count": self.left, "limit": ACTION_BATCH_LIMIT}
            )
        return ", ".join(parts)

    def report(self, model_admin: admin.ModelAdmin[Any], request: HttpRequest) -> None:
        level = messages.SUCCESS if self.done else messages.WARNING
        model_admin.message_user(request, self.message(), level)


def _photos_queued(count: int) -> str:
    return ngettext("%(count)d photo queued", "%(count)d photos queued", count) % {"count": count}


def _skip_reason(status: EnqueueStatus) -> str:
    return {
        EnqueueStatus.ALREADY_QUEUED: gettext("already queued"),
        EnqueueStatus.ALREADY_PROCESSING: gettext("being processed"),
        EnqueueStatus.ALREADY_DONE: gettext("already done"),
    }.get(status, str(status))


def enqueue_selected(
    queryset: QuerySet[Photo],
    *,
    statuses: Sequence[str],
    wrong_status: str,
    force: bool,
) -> Tally:
    """Queue the selected photos whose status is in `statuses` through `photo_enqueue`, the
    service the API uses; count the others by reason, with one aggregate query."""
    tally = Tally(_photos_queued)
    wanted = Q(status__in=statuses)
    counts = queryset.order_by().aggregate(
        eligible=Count("pk", filter=wanted & Q(queued_at__isnull=True)),
        queued=Count("pk", filter=wanted & Q(queued_at__isnull=False)),
        other=Count("pk", filter=~wanted),
    )
    if counts["queued"]:
        tally.skipped[_skip_reason(EnqueueStatus.ALREADY_QUEUED)] += counts["queued"]
    if counts["other"]:
        tally.skipped[wrong_status] += counts["other"]
    batch = queryset.filter(wanted, queued_at__isnull=True).order_by("updated_at", "pk")
    for photo in batch.select_related(None).only("pk")[:ACTION_BATCH_LIMIT]:
        result = photo_enqueue(photo=photo, force=force)
        if result.status == EnqueueStatus.ENQUEUED:
            tally.done += 1
        else:  # changed since the aggregate: a worker or another request got there first
            tally.skipped[_skip_reason(result.status)] += 1
    tally.left = max(counts["eligible"] - ACTION_BATCH_LIMIT, 0)
    return tally
