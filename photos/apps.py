from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PhotosConfig(AppConfig):
    name = "photos"
    verbose_name = _("Photos")
    default_auto_field = "django.db.models.BigAutoField"
