"""The queues page of the admin: queue figures, workers, stuck photos, dead letters."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from infra.broker import QUEUES, broker_redis
from operations.deadletters import dead_letter_purge, dead_letter_replay, dead_letters
from operations.queues import queue_stats
from operations.workers import worker_heartbeats
from photos.services.relay import photos_relay, photos_stuck
from webhooks.figures import webhook_delivery_figures

STUCK_SHOWN = 200


@require_http_methods(["GET", "POST"])
def queues_page(request: HttpRequest) -> HttpResponse:
    """GET shows the page; POST runs one action and comes back here (post/redirect/get)."""
    if request.method == "POST":
        _run_action(request)
        return HttpResponseRedirect(reverse("admin-queues"))
    beats = worker_heartbeats()
    context = {
        **admin.site.each_context(request),
        "title": _("Queues"),
        "queues": queue_stats(),
        "deliveries": webhook_delivery_figures(),
        "workers": [beat for beat in beats if beat.is_worker],
        "producers": [beat for beat in beats if not beat.is_worker],
        "stuck": photos_stuck(client=broker_redis(), limit=STUCK_SHOWN),
        "stuck_limit": STUCK_SHOWN,
        "dead": {queue: dead_letters(queue=queue) for queue in QUEUES},
    }
    return render(request, "admin/queues.html", context)


def _run_action(request: HttpRequest) -> None:
    action = request.POST.get("action", "")
    queue = request.POST.get("queue", "")
    if action == "requeue_stuck":
        sent, skipped = photos_relay(photos=photos_stuck(client=broker_redis()))
        messages.success(
            request,
            ngettext(
                "%(sent)d stuck photo re-enqueued, %(skipped)d skipped.",
                "%(sent)d stuck photos re-enqueued, %(skipped)d skipped.",
                sent,
            )
            % {"sent": sent, "skipped": skipped},
        )
        return
    if queue not in QUEUES:
        messages.error(request, _("Unknown queue."))
        return
    ids = request.POST.getlist("message")
    if action == "replay":
        if request.POST.get("all"):
            ids = [letter.redis_id for letter in dead_letters(queue=queue, limit=10_000)]
        count = dead_letter_replay(queue=queue, redis_ids=ids)
        messages.success(
            request,
            ngettext("%(count)d message replayed.", "%(count)d messages replayed.", count)
            % {"count": count},
        )
    elif action == "purge":
        count = dead_letter_purge(queue=queue, redis_ids=None if request.POST.get("all") else ids)
        messages.success(
            request,
            ngettext("%(count)d message purged.", "%(count)d messages purged.", count)
            % {"count": count},
        )
    else:
        messages.error(request, _("Unknown action."))
