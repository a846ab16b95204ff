from __future__ import annotations

from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """Operator features over every app: the relay, queues, dead letters, workers, /metrics."""

    name = "operations"
    verbose_name = "Operations"
