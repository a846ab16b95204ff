from __future__ import annotations

from django.apps import AppConfig


class AimetricsConfig(AppConfig):
    name = "aimetrics"
    verbose_name = "AI metrics"
    default_auto_field = "django.db.models.BigAutoField"
