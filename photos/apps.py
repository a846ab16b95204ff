from __future__ import annotations

from django.apps import AppConfig


class PhotosConfig(AppConfig):
    name = "photos"
    verbose_name = "Photos"
    default_auto_field = "django.db.models.BigAutoField"
