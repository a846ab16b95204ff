from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

#: The price source of the rows written before genai-prices (migration 0005).
LEGACY_PRICE_SOURCE = "hand-written table"


class AiMetric(models.Model):
    """One AI provider call: who answered, how fast, at what cost, and how it ended.

    Append-only (written by `aimetric_record`, read-only in the admin): `aimetric_rollup` sums the
    rows into the hourly tables below once, by id (aimetrics/rollup.py). A row changed or deleted
    after that stays counted as it was until `manage.py aimetrics_rollup --rebuild`.
    """

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
    #: Who priced the call: "genai-prices <version>", "AI_PRICES", "free" (the fake provider),
    #: "unpriced" (no one knows the model: $0); empty when nothing was answered, so nothing billed.
    #: The database default too: bulk loads in SQL (benchmarks, tests) need not name it.
    price_source = models.CharField(
        _("price source"), max_length=40, blank=True, default="", db_default=""
    )
    photo_id = models.UUIDField(_("photo"), null=True, blank=True)
    project_id = models.UUIDField(_("project"), null=True, blank=True)
    meta = models.JSONField(_("meta"), default=dict, blank=True)

    class Meta:
        verbose_name = _("AI metric")
        verbose_name_plural = _("AI metrics")
        ordering = ["-created_at"]
        # The rows not rolled up yet are read by id (the primary key) and, at a window's edges,
        # by created_at with an index-only scan, never a pass over the heap, whose `meta` makes it
        # four times larger; the retried photos through their own partial index.
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


# --- Hourly rollups, written only by `aimetric_rollup` (aimetrics/rollup.py) --------------------
# Each holds the AiMetric rows with id <= AiMetricRollup.rolled_up_id, summed per UTC hour.


class AnswerReuse(models.Model):
    """A photo analysed with the answer of an identical image (same bytes, model, prompt version
    and room type) already DONE in its project: no provider call, and what it would have cost."""

    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    photo_id = models.UUIDField(_("photo"))
    project_id = models.UUIDField(_("project"))
    #: The photo whose answer was reused (the first one that paid for it).
    reused_from = models.UUIDField(_("reused from"))
    saved_usd = models.DecimalField(
        _("saved (USD)"), max_digits=12, decimal_places=6, default=Decimal("0")
    )

    class Meta:
        verbose_name = _("reused answer")
        verbose_name_plural = _("reused answers")

    def __str__(self) -> str:
        return f"{self.photo_id} <- {self.reused_from}"


class AiMetricRollup(models.Model):
    """The one row (pk 1) saying how far the rollups go; locked by the job that moves it."""

    rolled_up_id = models.BigIntegerField(default=0)  # rows with id <= this are summed below
    # The highest id seen at `seen_at`: rolled up once every writer of an id up to it has ended.
    seen_id = models.BigIntegerField(default=0)
    seen_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rolled up to id {self.rolled_up_id}"


class AiMetricHour(models.Model):
    """The calls of one UTC hour for one provider, model, operation and outcome, summed."""

    pk = models.CompositePrimaryKey(
        "hour", "provider", "model", "operation", "success", "error_type"
    )
    hour = models.DateTimeField()  # the start of the UTC hour
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=64)
    operation = models.CharField(max_length=32)
    success = models.BooleanField()
    error_type = models.CharField(max_length=20, blank=True)  # "" when none was recorded
    calls = models.BigIntegerField()
    latency_ms_sum = models.BigIntegerField()
    tokens_in = models.BigIntegerField()
    tokens_out = models.BigIntegerField()
    cost_usd = models.DecimalField(max_digits=18, decimal_places=6)

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.provider}/{self.model}/{self.operation}"


class AiMetricHourLatency(models.Model):
    """A latency histogram: the calls of one UTC hour, provider, model, operation and outcome
    whose latency rounds up to `latency_le_ms` (the edges: `aimetrics.rollup.latency_bucket`)."""

    pk = models.CompositePrimaryKey(
        "hour", "provider", "model", "operation", "success", "latency_le_ms"
    )
    hour = models.DateTimeField()
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=64)
    operation = models.CharField(max_length=32)
    success = models.BooleanField()
    latency_le_ms = models.BigIntegerField()
    calls = models.BigIntegerField()

    def __str__(self) -> str:
        return (
            f"{self.hour:%Y-%m-%d %H}h {self.provider}/{self.operation} ≤ {self.latency_le_ms} ms"
        )


class AiMetricDayLatency(models.Model):
    """The same histograms per UTC day: a month's window reads 30 of these, not 720 hours'."""

    pk = models.CompositePrimaryKey(
        "day", "provider", "model", "operation", "success", "latency_le_ms"
    )
    day = models.DateTimeField()  # UTC midnight
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=64)
    operation = models.CharField(max_length=32)
    success = models.BooleanField()
    latency_le_ms = models.BigIntegerField()
    calls = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.provider}/{self.operation} ≤ {self.latency_le_ms} ms"


class AiMetricHourProject(models.Model):
    """The calls of one UTC hour for one project, summed (calls without a project: not here)."""

    pk = models.CompositePrimaryKey("hour", "project_id")
    hour = models.DateTimeField()
    project_id = models.UUIDField()
    calls = models.BigIntegerField()
    tokens_in = models.BigIntegerField()
    tokens_out = models.BigIntegerField()
    cost_usd = models.DecimalField(max_digits=18, decimal_places=6)

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h project {self.project_id}"


class AiMetricPhotoHour(models.Model):
    """A UTC hour in which a photo had calls, with the photo's previous such hour (None for its
    first). The photos with calls in the hours [a, b) are the rows with a <= hour < b whose
    previous hour is before a or None: each photo counted once, at its first hour in the range."""

    pk = models.CompositePrimaryKey("photo_id", "hour")
    photo_id = models.UUIDField()
    hour = models.DateTimeField()
    previous_hour = models.DateTimeField(null=True)

    class Meta:
        indexes = [models.Index(fields=["hour", "previous_hour"], name="aimetricphotohour_hour")]

    def __str__(self) -> str:
        return f"photo {self.photo_id} {self.hour:%Y-%m-%d %H}h"
