from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class AiMetric(models.Model):
    """One AI provider call: who answered, how fast, at what cost, and how it ended."""

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    provider = models.CharField(_("provider"), max_length=32)
    model = models.CharField(_("model"), max_length=64)
    operation = models.CharField(_("operation"), max_length=32)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"))
    success = models.BooleanField(_("success"))
    error_type = models.CharField(_("error type"), max_length=20, null=True, blank=True)
    retries = models.PositiveIntegerField(_("retries"), default=0)
    tokens_in = models.PositiveIntegerField(_("tokens in"), default=0)
    tokens_out = models.PositiveIntegerField(_("tokens out"), default=0)
    cost_usd = models.DecimalField(
        _("cost (USD)"), max_digits=12, decimal_places=6, default=Decimal("0")
    )
    photo_id = models.UUIDField(_("photo"), null=True, blank=True)
    project_id = models.UUIDField(_("project"), null=True, blank=True)
    meta = models.JSONField(_("meta"), default=dict, blank=True)

    class Meta:
        verbose_name = _("AI metric")
        verbose_name_plural = _("AI metrics")
        ordering = ["-created_at"]
        # The dashboard (aimetrics/dashboard.py) and /metrics read these with index-only scans,
        # never the heap, whose `meta` makes it four times larger (measured: README).
        indexes = [
            models.Index(
                fields=["created_at"],
                include=[
                    "provider",
                    "model",
                    "operation",
                    "latency_ms",
                    "success",
                    "tokens_in",
                    "tokens_out",
                    "cost_usd",
                    "photo_id",
                    "project_id",
                ],
                name="aimetric_created_cover",
            ),
            # Figures per provider/model/operation come out in index order: no sort of the rows.
            models.Index(
                fields=["provider", "model", "operation", "created_at"],
                include=["latency_ms", "success", "tokens_in", "tokens_out", "cost_usd"],
                name="aimetric_call_created",
            ),
            models.Index(
                fields=["created_at"],
                include=["error_type", "provider", "model", "operation"],
                condition=models.Q(success=False),
                name="aimetric_failed_created",
            ),
            models.Index(
                fields=["created_at"],
                include=["photo_id", "project_id", "retries", "success", "cost_usd"],
                condition=models.Q(retries__gt=0),
                name="aimetric_retried_created",
            ),
            models.Index(fields=["photo_id"], name="aimetric_photo"),
        ]

    def __str__(self) -> str:
        outcome = gettext("ok") if self.success else self.error_type or gettext("failed")
        return f"{self.provider}/{self.operation} {outcome}"
