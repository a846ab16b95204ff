"""The hourly rollups of AiMetric (PostgreSQL triggers, migration aimetrics 0003) and the dashboard
figures read from them.

The triggers are checked against the rollups recomputed from the raw rows after every kind of
write: single inserts, bulk and multi-row inserts, several statements in one transaction,
updates, deletes, TRUNCATE, and concurrent writers. The dashboard's rollup path is checked against
its raw path on random data, with windows whose edges fall inside hours, in three time zones
(one with a daylight-saving change inside the window, one half an hour off UTC).
"""

from __future__ import annotations

import dataclasses
import importlib
import random
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import Sum

from aimetrics.dashboard import Dashboard, Latency, dashboard_build
from aimetrics.models import AiMetric, AiMetricHour, AiMetricHourProject, AiMetricPhoto
from aimetrics.services import aimetric_record
from tests.test_dashboard import HISTOGRAM_ERROR

CALLS = [
    ("anthropic", "claude-sonnet-4-5", "analyze_photo"),
    ("anthropic", "claude-sonnet-4-5", "detect_room"),
    ("openai", "gpt-4.1-mini", "detect_room"),
]
COLUMNS = [
    "created_at", "provider", "model", "operation", "latency_ms", "success", "error_type",
    "retries", "tokens_in", "tokens_out", "cost_usd", "photo_id", "project_id",
]  # fmt: skip
HOUR = "date_trunc('hour', created_at, 'UTC')"
PHOTO_HOURS = f"""
    SELECT photo_id, hour, calls,
           lag(hour, 1, '-infinity') OVER (PARTITION BY photo_id ORDER BY hour) AS previous_hour
    FROM (SELECT photo_id, {HOUR} AS hour, count(*) AS calls FROM aimetrics_aimetric
          WHERE photo_id IS NOT NULL GROUP BY 1, 2) AS hours
"""
# Each rollup table (its rows with calls) and the same rows recomputed from aimetrics_aimetric.
EXPECTED = {
    "aimetrics_aimetrichour": (
        "SELECT hour, provider, model, operation, calls, successes, latency_ms_sum, tokens_in,"
        " tokens_out, cost_usd FROM aimetrics_aimetrichour",
        f"SELECT {HOUR}, provider, model, operation, count(*), count(*) FILTER (WHERE success),"
        " sum(latency_ms), sum(tokens_in), sum(tokens_out), sum(cost_usd)"
        " FROM aimetrics_aimetric GROUP BY 1, 2, 3, 4",
    ),
    "aimetrics_aimetrichourlatency": (
        "SELECT hour, provider, model, operation, bucket, calls FROM aimetrics_aimetrichourlatency",
        f"SELECT {HOUR}, provider, model, operation, aimetric_latency_bucket(latency_ms),"
        " count(*) FROM aimetrics_aimetric GROUP BY 1, 2, 3, 4, 5",
    ),
    "aimetrics_aimetricdaylatency": (
        "SELECT day, provider, model, operation, bucket, calls FROM aimetrics_aimetricdaylatency",
        "SELECT date_trunc('day', created_at, 'UTC'), provider, model, operation,"
        " aimetric_latency_bucket(latency_ms), count(*) FROM aimetrics_aimetric"
        " GROUP BY 1, 2, 3, 4, 5",
    ),
    "aimetrics_aimetrichourproject": (
        "SELECT hour, project_id, calls, tokens_in, tokens_out, cost_usd"
        " FROM aimetrics_aimetrichourproject",
        f"SELECT {HOUR}, project_id, count(*), sum(tokens_in), sum(tokens_out), sum(cost_usd)"
        " FROM aimetrics_aimetric WHERE project_id IS NOT NULL GROUP BY 1, 2",
    ),
    "aimetrics_aimetricphoto": (
        "SELECT photo_id, calls FROM aimetrics_aimetricphoto",
        "SELECT photo_id, count(*) FROM aimetrics_aimetric WHERE photo_id IS NOT NULL GROUP BY 1",
    ),
    "aimetrics_aimetricphotohour": (
        "SELECT photo_id, hour, calls, previous_hour FROM aimetrics_aimetricphotohour",
        PHOTO_HOURS,
    ),
    "aimetrics_aimetrichourphotocount": (
        # Link counts may stay at zero after an insert moved a link (harmless, never summed in).
        "SELECT hour, previous_hour, photos FROM aimetrics_aimetrichourphotocount"
        " WHERE photos <> 0",
        f"SELECT hour, previous_hour, count(*) FROM ({PHOTO_HOURS}) AS links GROUP BY 1, 2",
    ),
}


def rollup_differences() -> dict[str, list[tuple[str, str]]]:
    """Per rollup table, the rows it lacks ("missing") or has in excess ("extra"), as text."""
    differences = {}
    with connection.cursor() as cursor:
        for table, (actual, expected) in EXPECTED.items():
            cursor.execute(
                f"SELECT 'missing', d::text FROM ({expected} EXCEPT ALL {actual}) AS d"
                f" UNION ALL SELECT 'extra', d::text FROM ({actual} EXCEPT ALL {expected}) AS d"
            )
            if rows := cursor.fetchall():
                differences[table] = rows
    return differences


def rollup_row_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + " + ".join(f"(SELECT count(*) FROM {table})" for table in EXPECTED)
        )
        return int(cursor.fetchone()[0])


def random_row(rng: random.Random, at: datetime, photos: list[Any], projects: list[Any]) -> dict:
    provider, model, operation = rng.choice(CALLS)
    success = rng.random() > 0.1
    tokens_in, tokens_out = rng.randrange(0, 3000), rng.randrange(0, 600)
    return {
        "created_at": at,
        "provider": provider,
        "model": model,
        "operation": operation,
        # Mostly seconds, some tiny values (0 and 1 ms included), a few very slow calls.
        "latency_ms": rng.choice([0, 1, 2, 7]) if rng.random() < 0.03
        else int(rng.lognormvariate(7.5, 0.6)) if rng.random() < 0.97
        else rng.randrange(60_000, 300_000),
        "success": success,
        "error_type": None if success else rng.choice(["TIMEOUT", "RATE_LIMIT", None]),
        "retries": rng.choice([0, 0, 0, 1, 2]),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost_usd": Decimal(tokens_in * 3 + tokens_out * 15) / 1_000_000,
        "photo_id": rng.choice(photos),
        "project_id": rng.choice(projects),
    }  # fmt: skip


def insert_rows(rows: list[dict]) -> None:
    """One INSERT … SELECT FROM unnest(…) statement, created_at included (the bench's way)."""
    types = [
        "timestamptz", "text", "text", "text", "int", "bool", "text", "int", "int", "int",
        "numeric", "uuid", "uuid",
    ]  # fmt: skip
    arrays = ", ".join(f"%s::{kind}[]" for kind in types)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO aimetrics_aimetric ({', '.join(COLUMNS)}, meta) "
            f"SELECT *, '{{}}'::jsonb FROM unnest({arrays})",
            [[row[column] for row in rows] for column in COLUMNS],
        )


def record(**fields: Any) -> AiMetric:
    defaults = dict(zip(("provider", "model", "operation"), CALLS[0], strict=True))
    return aimetric_record(**{**defaults, "latency_ms": 100, "success": True, **fields})


# --- The triggers ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_single_insert_updates_every_rollup() -> None:
    photo, project = uuid.uuid4(), uuid.uuid4()
    record(latency_ms=1200, tokens_in=1000, tokens_out=100, cost_usd=Decimal("0.004500"),
           photo_id=photo, project_id=project)  # fmt: skip
    record(latency_ms=800, success=False, error_type="TIMEOUT", photo_id=photo, project_id=project)
    record(latency_ms=0, tokens_in=10, cost_usd=Decimal("0.000030"))  # no photo, no project
    assert rollup_differences() == {}
    hour = AiMetricHour.objects.get()
    assert (hour.calls, hour.successes, hour.latency_ms_sum) == (3, 2, 2000)
    assert (hour.tokens_in, hour.tokens_out, hour.cost_usd) == (1010, 100, Decimal("0.004530"))
    assert AiMetricHourProject.objects.get().calls == 2
    assert AiMetricPhoto.objects.get().calls == 2


@pytest.mark.django_db
def test_bulk_and_multi_row_inserts_in_one_transaction() -> None:
    rng = random.Random(1)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    photos = [uuid.uuid4() for _ in range(5)]
    with transaction.atomic():
        AiMetric.objects.bulk_create(
            AiMetric(provider=p, model=m, operation=o, latency_ms=rng.randrange(50, 5000),
                     success=True, cost_usd=Decimal("0.000100"), photo_id=rng.choice(photos))
            for p, m, o in rng.choices(CALLS, k=40)
        )  # fmt: skip
        insert_rows(
            [
                random_row(rng, start + timedelta(minutes=rng.randrange(0, 600)), photos, [None])
                for _ in range(60)
            ]
        )
        record(photo_id=photos[0])
        assert rollup_differences() == {}  # inside the transaction already
    assert rollup_differences() == {}
    assert AiMetricHour.objects.aggregate(n=Sum("calls"))["n"] == 101


@pytest.mark.django_db
def test_updates_deletes_and_truncate_keep_the_rollups_exact() -> None:
    rng = random.Random(2)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    photos = [uuid.uuid4() for _ in range(8)]
    at = [start + timedelta(minutes=rng.randrange(0, 24 * 60)) for _ in range(120)]
    insert_rows([random_row(rng, moment, photos, [None, uuid.uuid4()]) for moment in at])
    assert rollup_differences() == {}
    ids = list(AiMetric.objects.values_list("pk", flat=True))
    # Rows move to other hours (the photos' hours are relinked), change latency, change photo.
    AiMetric.objects.filter(pk__in=ids[:30]).update(created_at=start - timedelta(hours=5))
    AiMetric.objects.filter(pk__in=ids[30:50]).update(latency_ms=12_345, success=False)
    AiMetric.objects.filter(pk__in=ids[50:60]).update(photo_id=photos[0])
    assert rollup_differences() == {}
    AiMetric.objects.filter(pk__in=ids[60:100]).delete()
    assert rollup_differences() == {}
    AiMetric.objects.filter(pk__in=ids[100:]).delete()
    AiMetric.objects.filter(pk__in=ids[:60]).update(meta={"note": "meta only"})  # no change
    assert rollup_differences() == {}
    AiMetric.objects.all().delete()
    assert rollup_row_count() == 0  # nothing left at zero
    insert_rows([random_row(rng, moment, photos, [None]) for moment in at[:10]])
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE aimetrics_aimetric")
    assert rollup_row_count() == 0


@pytest.mark.django_db
def test_a_photo_inserted_out_of_order_is_counted_once_per_range() -> None:
    photo, other = uuid.uuid4(), uuid.uuid4()
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for hours in (5, 1, 3, 3, 9):  # a later insert lands between two linked hours
        insert_rows([random_row(random.Random(hours), base + timedelta(hours=hours, minutes=7),
                                [photo], [None])])  # fmt: skip
    insert_rows([random_row(random.Random(0), base + timedelta(hours=3), [other], [None])])
    assert rollup_differences() == {}
    for since, until, photos in [(0, 12, 2), (2, 4, 2), (4, 6, 1), (6, 9, 0), (1, 2, 1)]:
        dashboard = dashboard_build(
            since=base + timedelta(hours=since), until=base + timedelta(hours=until)
        )
        assert dashboard.summary.photos == photos, (since, until)


@pytest.mark.django_db
def test_the_migrations_backfill_computes_the_same_rollups() -> None:
    migration = importlib.import_module("aimetrics.migrations.0003_hourly_rollups")
    rng = random.Random(3)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    photos = [uuid.uuid4() for _ in range(20)] + [None]
    insert_rows(
        [
            random_row(rng, start + timedelta(minutes=rng.randrange(0, 3000)), photos, [None])
            for _ in range(300)
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(EXPECTED))
        assert rollup_row_count() == 0
        cursor.execute(migration.BACKFILL)
    assert rollup_differences() == {}


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_the_rollups_exact() -> None:
    """Eight connections insert at once into the same hours, for the same photos and projects
    (a photo's hours written by several writers at a time): no deadlock, no lost count."""
    photos = [uuid.uuid4() for _ in range(6)]
    projects = [uuid.uuid4(), None]
    base = datetime(2026, 11, 1, tzinfo=UTC)
    barrier = threading.Barrier(8)

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            barrier.wait(timeout=30)
            for i in range(25):
                at = base + timedelta(hours=rng.randrange(0, 4), seconds=rng.randrange(3600))
                rows = [random_row(rng, at, photos, projects) for _ in range(1 + i % 3)]
                if i % 5 == 0:
                    record(photo_id=rng.choice(photos), project_id=projects[0])
                else:
                    insert_rows(rows)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(writer, seed) for seed in range(8)]:
            future.result(timeout=120)
    assert AiMetric.objects.count() == 8 * (5 + sum(1 + i % 3 for i in range(25) if i % 5))
    assert rollup_differences() == {}


# --- The dashboard: rollup against raw rows -------------------------------------------------


@pytest.fixture
def random_metrics(db: Any) -> Iterator[tuple[datetime, datetime]]:
    """About 3,000 calls over 40 days to 2026-11-28, some exactly on hour and window edges."""
    rng = random.Random(42)
    end = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    first = end - timedelta(days=40)
    photos = [uuid.uuid4() for _ in range(600)] + [None] * 30
    projects = [uuid.uuid4() for _ in range(30)] + [None] * 3
    moments = [first + (end - first) * rng.random() for _ in range(3000)]
    moments += [first + timedelta(hours=h) for h in range(0, 40 * 24, 7)]  # on the hour
    insert_rows([random_row(rng, at, photos, projects) for at in moments])
    yield first, end


def without_percentiles(dashboard: Dashboard) -> Dashboard:
    def latency(value: Latency) -> Latency:
        return dataclasses.replace(value, p50=None, p95=None, p99=None)

    return dataclasses.replace(
        dashboard,
        summary=dataclasses.replace(dashboard.summary, latency=latency(dashboard.summary.latency)),
        by_call=[dataclasses.replace(c, latency=latency(c.latency)) for c in dashboard.by_call],
        series=[dataclasses.replace(b, p95=None) for b in dashboard.series],
    )


def percentiles(dashboard: Dashboard) -> list[float | None]:
    values: list[float | None] = []
    for latency in [dashboard.summary.latency, *(c.latency for c in dashboard.by_call)]:
        values += [latency.p50, latency.p95, latency.p99]
    return values + [bucket.p95 for bucket in dashboard.series]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "Asia/Kolkata"])
@pytest.mark.parametrize(
    ("offset", "span"),
    [
        # A day and a half (hourly series) and 30 days (daily), both ending mid-hour; Paris
        # leaves summer time on 2026-10-25, inside the long windows.
        (timedelta(hours=3, minutes=17, seconds=5.25), timedelta(hours=36)),
        (timedelta(days=2, minutes=41), timedelta(days=30)),
        (timedelta(days=7, minutes=1), timedelta(days=7, hours=-1)),
        (timedelta(minutes=10), timedelta(minutes=40)),  # no whole hour at all
    ],
)
def test_rollup_figures_equal_the_raw_figures(
    random_metrics: tuple[datetime, datetime],
    settings: Any,
    zone: str,
    offset: timedelta,
    span: timedelta,
) -> None:
    settings.TIME_ZONE = zone
    _, end = random_metrics
    until = end - offset
    options: dict[str, Any] = {
        "since": until - span, "until": until, "top_projects": 50, "retried_limit": 1000,
    }  # fmt: skip
    rollup = dashboard_build(**options, method="rollup")
    raw = dashboard_build(**options, method="raw")
    assert rollup.summary.calls > 0
    # Counts, sums, tokens, costs, means, photos, days, projects, failures, retries: exact.
    assert without_percentiles(rollup) == without_percentiles(raw)
    for approximate, exact in zip(percentiles(rollup), percentiles(raw), strict=True):
        assert approximate is not None and exact is not None
        assert abs(approximate - exact) <= HISTOGRAM_ERROR * exact + 1e-9, (approximate, exact)


def test_a_window_across_the_daylight_saving_change_has_local_days(
    random_metrics: tuple[datetime, datetime], settings: Any
) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    since = datetime(2026, 10, 23, 22, 0, tzinfo=UTC)  # Oct 24, 00:00 in Paris (UTC+2)
    dashboard = dashboard_build(since=since, until=since + timedelta(days=9))
    starts = [bucket.start for bucket in dashboard.series[:3]]
    # Oct 25 has 25 hours: the next local midnight is 23:00 UTC.
    assert starts == [since, since + timedelta(days=1), since + timedelta(days=2, hours=1)]
    assert [d.day.isoformat() for d in dashboard.cost_by_day[:3]] == [
        "2026-10-24",
        "2026-10-25",
        "2026-10-26",
    ]
