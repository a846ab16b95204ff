from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MoverzConfig(AppConfig):
    name = "moverz"
    verbose_name = "Moverz"

    def ready(self) -> None:
        from django.contrib import admin

        admin.site.site_header = _("Moverz staff console")
        admin.site.site_title = _("Moverz staff console")
