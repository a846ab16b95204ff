"""The AI metrics dashboard, an admin page (staff only: wrapped in admin_view in moverz/urls)."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from ai_engine.pricing import GENAI_PRICES, UNPRICED
from aimetrics.charts import Point, bar_chart, column_chart, line_chart
from aimetrics.dashboard import Dashboard, dashboard_build
from aimetrics.forms import DEFAULT_WINDOW, DashboardWindowForm
from aimetrics.models import AiMetric
from aimetrics.panels import dashboard_panels


def ai_dashboard(request: HttpRequest) -> HttpResponse:
    """Figures for the chosen window; a bad window shows the form's errors, not a 500."""
    form = DashboardWindowForm(request.GET or {"window": DEFAULT_WINDOW})
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": _("AI metrics dashboard"),
        "opts": AiMetric._meta,
        "form": form,
    }
    if form.is_valid():
        window = form.cleaned_data["range"]
        dashboard = dashboard_build(since=window.since, until=window.until)
        context |= _page(dashboard)
        context["panels"] = [panel(request, window) for panel in dashboard_panels()]
    return render(request, "admin/aimetrics/dashboard.html", context)


def _admin_url(name: str, object_id: uuid.UUID | None) -> str | None:
    """The admin page of a photo or project (aimetrics stores only their ids)."""
    if object_id is None:
        return None
    try:
        return reverse(name, args=[object_id])
    except NoReverseMatch:  # that model is not in the admin
        return None


def _page(dashboard: Dashboard) -> dict[str, Any]:
    hourly = dashboard.window.bucket == "hour"
    label_format = "%m-%d %H:%M" if hourly else "%Y-%m-%d"

    def label(moment: Any) -> str:
        return timezone.localtime(moment).strftime(label_format)

    no_calls = _("No calls in this window.")
    latency = [Point(label(b.start), b.p95) for b in dashboard.series if b.p95 is not None]
    cost = [Point(label(b.start), float(b.cost_usd)) for b in dashboard.series]
    failures = [Point(f.error_type or _("(none)"), f.calls) for f in dashboard.failures]
    per = _("per hour") if hourly else _("per day")
    changelist = reverse("admin:aimetrics_aimetric_changelist")
    return {
        "dashboard": dashboard,
        "summary": dashboard.summary,
        "charts": [
            {"title": title, "svg": draw(points, title=title, unit=unit, empty=empty)}
            for draw, points, title, unit, empty in (
                (line_chart, latency, _("P95 latency %(per)s") % {"per": per}, "ms", no_calls),
                (column_chart, cost, _("Cost %(per)s") % {"per": per}, "USD", no_calls),
                (bar_chart, failures, _("Failures by error type"), "", _("No failures.")),
            )
        ],
        "retried": [
            (
                photo,
                _admin_url("admin:photos_photo_change", photo.photo_id),
                _admin_url("admin:photos_project_change", photo.project_id),
            )
            for photo in dashboard.retried_photos
        ],
        "projects": [
            (project, _admin_url("admin:photos_project_change", project.project_id))
            for project in dashboard.cost_by_project
        ],
        "changelist": changelist,
        "price_source": GENAI_PRICES,
        "price_overrides": ", ".join(sorted(settings.AI_PRICES)),
        "unpriced": f"{changelist}?{urlencode({'price_source': UNPRICED})}",
    }
