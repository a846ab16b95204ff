from __future__ import annotations

from django.apps import AppConfig


class MoverzConfig(AppConfig):
    name = "moverz"
    verbose_name = "Moverz"
