"""The model's accuracy as a panel of the AI metrics dashboard (registered with
`aimetrics.panels` in `InventoryConfig.ready`) and of the accuracy report's own admin page."""

from __future__ import annotations

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode

from aimetrics.forms import DEFAULT_WINDOW
from aimetrics.windows import Window
from inventory.accuracy import inventory_accuracy


def accuracy_panel(request: HttpRequest, window: Window) -> str:
    """The accuracy report for `window`, as a section of a page (the AI dashboard's panel)."""
    return render_to_string(
        "admin/inventory/accuracy_panel.html",
        {
            "rows": inventory_accuracy(since=window.since, until=window.until),
            "report_url": reverse("admin:inventory_inventorycorrection_accuracy")
            + "?"
            + urlencode(_window_query(request)),
            "corrections_url": reverse("admin:inventory_inventorycorrection_changelist"),
        },
        request=request,
    )


def _window_query(request: HttpRequest) -> dict[str, str]:
    """The dashboard's window as its form read it, for the link to the full report."""
    chosen = {k: request.GET[k] for k in ("window", "since", "until") if request.GET.get(k)}
    return chosen or {"window": DEFAULT_WINDOW}
