"""Sections other apps add to the AI metrics dashboard.

aimetrics sits below the apps whose figures say how good the AI is (inventory's accuracy report
reads staff corrections): it imports none of them. An app registers a panel in its
`AppConfig.ready`; the dashboard renders each registered panel for its window, in order.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest

from aimetrics.windows import Window

#: A panel: the HTML of its section of the dashboard for one window (from a template).
DashboardPanel = Callable[[HttpRequest, Window], str]

_panels: list[DashboardPanel] = []


def register_dashboard_panel(panel: DashboardPanel) -> DashboardPanel:
    """Show `panel` on the dashboard, after the figures of its own. Registering it twice adds it
    once."""
    if panel not in _panels:
        _panels.append(panel)
    return panel


def dashboard_panels() -> list[DashboardPanel]:
    return list(_panels)
