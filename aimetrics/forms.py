"""The dashboard's window: a preset (24 h, 7 d, 30 d) or custom dates."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from aimetrics.windows import WindowError, window_parse

DEFAULT_WINDOW = "24h"
CUSTOM = "custom"


class DashboardWindowForm(forms.Form):
    window = forms.ChoiceField(
        label=_("Window"),
        required=False,
        choices=[
            ("24h", _("last 24 hours")),
            ("7d", _("last 7 days")),
            ("30d", _("last 30 days")),
            (CUSTOM, _("custom")),
        ],
    )
    since = forms.CharField(
        label=_("From"), required=False, widget=forms.TextInput(attrs={"type": "date"})
    )
    until = forms.CharField(
        label=_("To (included)"), required=False, widget=forms.TextInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        """Adds `range`, a dashboard Window. From/to given without a preset mean custom."""
        data = super().clean() or {}
        since, until = data.get("since", ""), data.get("until", "")
        preset = data.get("window") or (CUSTOM if since or until else DEFAULT_WINDOW)
        if preset == CUSTOM and not since:
            self.add_error("since", _("Give the first day of the window."))
            return data
        try:
            if preset == CUSTOM:
                data["range"] = window_parse(since=since, until=until or None)
            else:
                data["range"] = window_parse(since=preset)
        except WindowError as error:
            self.add_error(error.field, str(error))
        return data
