"""Hourly rollups kept by a job instead of triggers (aimetrics/rollup.py).

Drops 0003's triggers and PL/pgSQL functions (PostgreSQL), then its rollup tables, and creates the
job's tables, empty: the read path reads every row not rolled up yet from AiMetric itself, so the
figures are right before the job's first run, and it catches up in bounded batches. Also drops
the two AiMetric indexes that only the SQL of 0003's era read. Reversible: going back recreates
0003's tables and triggers, filled from the rows (its own backfill).
"""

import importlib
from typing import Any

from django.db import migrations, models

ROLLUPS_0003 = importlib.import_module("aimetrics.migrations.0003_hourly_rollups")
OLD_MODELS = [
    "AiMetricDayLatency",
    "AiMetricHour",
    "AiMetricHourLatency",
    "AiMetricHourPhotoCount",
    "AiMetricHourProject",
    "AiMetricPhoto",
    "AiMetricPhotoHour",
]


def drop_triggers(apps: Any, schema_editor: Any) -> None:
    ROLLUPS_0003.drop_triggers(apps, schema_editor)


def create_triggers(apps: Any, schema_editor: Any) -> None:
    ROLLUPS_0003.create_triggers(apps, schema_editor)


def key(*names: str) -> models.CompositePrimaryKey:
    return models.CompositePrimaryKey(
        *names, blank=True, editable=False, primary_key=True, serialize=False
    )


def call_fields() -> list[tuple[str, models.Field[Any, Any]]]:
    return [
        ("provider", models.CharField(max_length=32)),
        ("model", models.CharField(max_length=64)),
        ("operation", models.CharField(max_length=32)),
        ("success", models.BooleanField()),
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("aimetrics", "0003_hourly_rollups"),
    ]

    operations = [
        migrations.RunPython(drop_triggers, create_triggers),
        *(migrations.DeleteModel(name=name) for name in OLD_MODELS),
        migrations.RemoveIndex(model_name="aimetric", name="aimetric_call_created"),
        migrations.RemoveIndex(model_name="aimetric", name="aimetric_failed_created"),
        migrations.CreateModel(
            name="AiMetricRollup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("rolled_up_id", models.BigIntegerField(default=0)),
                ("seen_id", models.BigIntegerField(default=0)),
                ("seen_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.CreateModel(
            name="AiMetricHour",
            fields=[
                ("pk", key("hour", "provider", "model", "operation", "success", "error_type")),
                ("hour", models.DateTimeField()),
                *call_fields(),
                ("error_type", models.CharField(blank=True, max_length=20)),
                ("calls", models.BigIntegerField()),
                ("latency_ms_sum", models.BigIntegerField()),
                ("tokens_in", models.BigIntegerField()),
                ("tokens_out", models.BigIntegerField()),
                ("cost_usd", models.DecimalField(decimal_places=6, max_digits=18)),
            ],
        ),
        migrations.CreateModel(
            name="AiMetricHourLatency",
            fields=[
                ("pk", key("hour", "provider", "model", "operation", "success", "latency_le_ms")),
                ("hour", models.DateTimeField()),
                *call_fields(),
                ("latency_le_ms", models.BigIntegerField()),
                ("calls", models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="AiMetricDayLatency",
            fields=[
                ("pk", key("day", "provider", "model", "operation", "success", "latency_le_ms")),
                ("day", models.DateTimeField()),
                *call_fields(),
                ("latency_le_ms", models.BigIntegerField()),
                ("calls", models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="AiMetricHourProject",
            fields=[
                ("pk", key("hour", "project_id")),
                ("hour", models.DateTimeField()),
                ("project_id", models.UUIDField()),
                ("calls", models.BigIntegerField()),
                ("tokens_in", models.BigIntegerField()),
                ("tokens_out", models.BigIntegerField()),
                ("cost_usd", models.DecimalField(decimal_places=6, max_digits=18)),
            ],
        ),
        migrations.CreateModel(
            name="AiMetricPhotoHour",
            fields=[
                ("pk", key("photo_id", "hour")),
                ("photo_id", models.UUIDField()),
                ("hour", models.DateTimeField()),
                ("previous_hour", models.DateTimeField(null=True)),
            ],
            options={
                "indexes": [
                    models.Index(fields=["hour", "previous_hour"], name="aimetricphotohour_hour")
                ],
            },
        ),
    ]
