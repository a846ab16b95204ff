from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class AiMetric(models.Model):
    """One AI provider call: who answered, how fast, at what cost, and how it ended.

    Append-only in our code (written by `aimetric_record`, read-only in the admin). On PostgreSQL
    triggers keep the hourly rollups below equal to the sums of these rows whatever writes them:
    INSERT (one row or many), UPDATE, DELETE and TRUNCATE (migration 0003).
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


# --- Hourly rollups, written only by PostgreSQL triggers on AiMetric (migration 0003) -----------
# The dashboard reads these for the whole UTC hours of its window (aimetrics/dashboard_rollup.py).
# On SQLite the tables exist but stay empty: no triggers, the dashboard reads the raw rows there.


class AiMetricHour(models.Model):
    """The calls of one UTC hour for one provider, model and operation, summed."""

    pk = models.CompositePrimaryKey("hour", "provider", "model", "operation")
    hour = models.DateTimeField()  # the start of the UTC hour
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=64)
    operation = models.CharField(max_length=32)
    calls = models.BigIntegerField()
    successes = models.BigIntegerField()
    latency_ms_sum = models.BigIntegerField()
    tokens_in = models.BigIntegerField()
    tokens_out = models.BigIntegerField()
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6)

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.provider}/{self.model}/{self.operation}"


class AiMetricHourLatency(models.Model):
    """A latency histogram: calls of one UTC hour and provider/model/operation per bucket.

    Bucket b holds latencies in [γ^b, γ^(b+1)) ms with γ = 1.02, bucket -1 holds 0 ms: the SQL
    functions `aimetric_latency_bucket` and `aimetric_latency_bucket_ms` (migration 0003).
    """

    pk = models.CompositePrimaryKey("hour", "provider", "model", "operation", "bucket")
    hour = models.DateTimeField()
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=64)
    operation = models.CharField(max_length=32)
    bucket = models.SmallIntegerField()
    calls = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.provider}/{self.operation} bucket {self.bucket}"


class AiMetricDayLatency(models.Model):
    """The same histogram per UTC day: a 30-day window reads 30 of these instead of 720 hours."""

    pk = models.CompositePrimaryKey("day", "provider", "model", "operation", "bucket")
    day = models.DateTimeField()  # UTC midnight
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=64)
    operation = models.CharField(max_length=32)
    bucket = models.SmallIntegerField()
    calls = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.provider}/{self.operation} bucket {self.bucket}"


class AiMetricHourProject(models.Model):
    """The calls of one UTC hour for one project, summed (calls without a project: not here)."""

    pk = models.CompositePrimaryKey("hour", "project_id")
    hour = models.DateTimeField()
    project_id = models.UUIDField()
    calls = models.BigIntegerField()
    tokens_in = models.BigIntegerField()
    tokens_out = models.BigIntegerField()
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6)

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h project {self.project_id}"


class AiMetricPhoto(models.Model):
    """Calls per photo, all time. The trigger locks a photo's row here before it changes the
    photo's hours below, so that two writers never link the same photo's hours concurrently."""

    photo_id = models.UUIDField(primary_key=True)
    calls = models.BigIntegerField()

    def __str__(self) -> str:
        return f"photo {self.photo_id}"


class AiMetricPhotoHour(models.Model):
    """A UTC hour in which a photo had calls, linked to the photo's previous such hour
    (-infinity for its first: read that column in SQL, psycopg cannot load it as a datetime)."""

    pk = models.CompositePrimaryKey("photo_id", "hour")
    photo_id = models.UUIDField()
    hour = models.DateTimeField()
    calls = models.BigIntegerField()
    previous_hour = models.DateTimeField()

    def __str__(self) -> str:
        return f"photo {self.photo_id} {self.hour:%Y-%m-%d %H}h"


class AiMetricHourPhotoCount(models.Model):
    """The rows of AiMetricPhotoHour counted per hour and previous hour. The distinct photos with
    calls in the hours [a, b) are the sum over a ≤ hour < b and previous_hour < a: each photo is
    counted at its first hour in the range, exactly."""

    pk = models.CompositePrimaryKey("hour", "previous_hour")
    hour = models.DateTimeField()
    previous_hour = models.DateTimeField()  # -infinity: the photo's first hour
    photos = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h: {self.photos} photos"
