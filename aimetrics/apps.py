from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AimetricsConfig(AppConfig):
    name = "aimetrics"
    verbose_name = _("AI metrics")
    default_auto_field = "django.db.models.BigAutoField"
