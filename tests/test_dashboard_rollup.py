"""The hourly rollups of AiMetric (aimetrics/rollup.py) and the figures read through them.

The rollup tables are checked against sums recomputed here in Python from the rows up to the
watermark: after single, bulk and out-of-order inserts, in small batches, with writers whose ids
commit out of order, with rollers and readers running at once, and after a rebuild. The
dashboard is checked against figures computed here from the raw rows on random data, rolled up or
not, with windows whose edges fall inside hours, in three time zones (one with a daylight-saving
change inside the window, one half an hour off UTC).
"""

from __future__ import annotations

import math
import random
import threading
import time as time_module
import uuid
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from aimetrics.dashboard import Dashboard, Latency, dashboard_build
from aimetrics.models import (
    AiMetric,
    AiMetricDayLatency,
    AiMetricHour,
    AiMetricHourLatency,
    AiMetricHourProject,
    AiMetricPhotoHour,
    AiMetricRollup,
)
from aimetrics.rollup import aimetric_rollup, aimetric_rollup_rebuild, latency_bucket
from aimetrics.services import aimetric_record
from tests.fakeai import GPT, SONNET
from tests.test_dashboard import HISTOGRAM_ERROR

CALLS = [
    ("anthropic", SONNET, "analyze_photo"),
    ("anthropic", SONNET, "detect_room"),
    ("openai", GPT, "detect_room"),
]
COLUMNS = [
    "created_at", "provider", "model", "operation", "latency_ms", "success", "error_type",
    "retries", "tokens_in", "tokens_out", "cost_usd", "photo_id", "project_id",
]  # fmt: skip
NOW = timedelta(0)  # settle: every committed row may be rolled up


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


def watermark() -> int:
    return AiMetricRollup.objects.values_list("rolled_up_id", flat=True).first() or 0


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def expected_rollups(upto: int) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Every rollup table's rows, summed here from the AiMetric rows with id <= upto."""
    sums: dict[str, dict[tuple[Any, ...], list[Any]]] = defaultdict(dict)
    photo_hours: dict[uuid.UUID, set[datetime]] = defaultdict(set)
    for row in AiMetric.objects.filter(id__lte=upto).values():
        hour = hour_of(row["created_at"])
        call = (row["provider"], row["model"], row["operation"], row["success"])
        values: list[Any] = [
            row["latency_ms"],
            row["tokens_in"],
            row["tokens_out"],
            row["cost_usd"],
        ]
        additions: list[tuple[str, tuple[Any, ...], list[Any]]] = [
            ("hour", (hour, *call, row["error_type"] or ""), [1, *values]),
            ("latency", (hour, *call, latency_bucket(row["latency_ms"])), [1]),
            ("day", (hour.replace(hour=0), *call, latency_bucket(row["latency_ms"])), [1]),
            ("project", (hour, row["project_id"]), [1, *values[1:]]),
        ]
        for table, key, added in additions:
            if table == "project" and row["project_id"] is None:
                continue
            totals = sums[table].setdefault(key, [0] * len(added))
            sums[table][key] = [a + b for a, b in zip(totals, added, strict=True)]
        if row["photo_id"] is not None:
            photo_hours[row["photo_id"]].add(hour)
    expected = {table: {k: tuple(v) for k, v in rows.items()} for table, rows in sums.items()}
    expected["photo"] = {}
    for photo, hours in photo_hours.items():
        ordered = sorted(hours)
        for previous, hour in zip([None, *ordered], ordered, strict=False):
            expected["photo"][photo, hour] = (previous,)
    return {
        table: expected.get(table, {}) for table in ("hour", "latency", "day", "project", "photo")
    }


def actual_rollups() -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    call = ["provider", "model", "operation", "success"]
    tables: list[tuple[str, Any, list[str], list[str]]] = [
        ("hour", AiMetricHour, ["hour", *call, "error_type"],
         ["calls", "latency_ms_sum", "tokens_in", "tokens_out", "cost_usd"]),
        ("latency", AiMetricHourLatency, ["hour", *call, "latency_le_ms"], ["calls"]),
        ("day", AiMetricDayLatency, ["day", *call, "latency_le_ms"], ["calls"]),
        ("project", AiMetricHourProject, ["hour", "project_id"],
         ["calls", "tokens_in", "tokens_out", "cost_usd"]),
        ("photo", AiMetricPhotoHour, ["photo_id", "hour"], ["previous_hour"]),
    ]  # fmt: skip
    return {
        name: {
            row[: len(keys)]: row[len(keys) :] for row in model.objects.values_list(*keys, *sums)
        }
        for name, model, keys, sums in tables
    }


def assert_rollups_exact() -> None:
    expected, actual = expected_rollups(watermark()), actual_rollups()
    for table in expected:
        assert actual[table] == expected[table], table


def roll_up_all(**options: Any) -> int:
    total = 0
    while moved := aimetric_rollup(settle=NOW, **options):
        total += moved
    return total


# --- The job ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_rollups_are_the_sums_of_the_rows_up_to_the_watermark() -> None:
    rng = random.Random(1)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    photos = [uuid.uuid4() for _ in range(5)] + [None]
    record(latency_ms=1200, tokens_in=1000, cost_usd=Decimal("0.004500"), photo_id=photos[0],
           project_id=uuid.uuid4())  # fmt: skip
    record(latency_ms=0, success=False, error_type="TIMEOUT")  # no photo, no project
    AiMetric.objects.bulk_create(
        AiMetric(provider=p, model=m, operation=o, latency_ms=rng.randrange(50, 5000),
                 success=True, cost_usd=Decimal("0.000100"), photo_id=rng.choice(photos))
        for p, m, o in rng.choices(CALLS, k=40)
    )  # fmt: skip
    insert_rows([random_row(rng, start + timedelta(minutes=rng.randrange(0, 3000)), photos,
                            [None, uuid.uuid4()]) for _ in range(200)])  # fmt: skip
    assert roll_up_all() == AiMetric.objects.count() == 242
    assert watermark() == AiMetric.objects.latest("id").pk
    assert_rollups_exact()
    assert aimetric_rollup(settle=NOW) == 0  # nothing new: nothing moves, nothing is added twice
    assert_rollups_exact()


@pytest.mark.django_db
def test_rows_inserted_out_of_order_land_in_their_own_hours() -> None:
    """Rows dated hours or days back arrive after their hours were rolled up; a photo's new hour
    lands between two hours it already had: photos are still counted once per range."""
    photo, other = uuid.uuid4(), uuid.uuid4()
    base = datetime(2026, 11, 1, tzinfo=UTC)

    def at(hours: int, photos: list[Any]) -> None:
        rng = random.Random(hours)
        insert_rows([random_row(rng, base + timedelta(hours=hours, minutes=7), photos, [None])])

    at(5, [photo])
    at(9, [photo])
    roll_up_all()
    for hours in (1, 3, 3):  # before, between, between again
        at(hours, [photo])
    at(3, [other])
    ranges = [(0, 12, 2), (2, 4, 2), (4, 6, 1), (6, 9, 0), (1, 2, 1), (3, 10, 2)]

    def photos_per_range() -> list[int]:
        return [
            dashboard_build(
                since=base + timedelta(hours=since), until=base + timedelta(hours=until)
            ).summary.photos
            for since, until, _ in ranges
        ]

    assert photos_per_range() == [photos for _, _, photos in ranges]  # read raw, above the mark
    roll_up_all()
    assert_rollups_exact()
    assert photos_per_range() == [photos for _, _, photos in ranges]


@pytest.mark.django_db
def test_small_batches_add_up_to_one_big_one() -> None:
    rng = random.Random(2)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    photos = [uuid.uuid4() for _ in range(8)]
    moments = [start + timedelta(minutes=rng.randrange(0, 2 * 24 * 60)) for _ in range(150)]
    insert_rows([random_row(rng, moment, photos, [None, uuid.uuid4()]) for moment in moments])
    assert aimetric_rollup(settle=NOW, batch=7) == 7
    assert_rollups_exact()
    assert roll_up_all(batch=7) == 143
    assert_rollups_exact()
    gap = [record(latency_ms=5) for _ in range(3)]
    AiMetric.objects.filter(pk__in=[row.pk for row in gap[:2]]).delete()  # as after rollbacks
    assert aimetric_rollup(settle=NOW, batch=1) == 1  # the batch starts at the next row
    assert watermark() == gap[2].pk
    assert_rollups_exact()


@pytest.mark.django_db
def test_ids_are_rolled_up_only_once_they_have_settled() -> None:
    """The job rolls up to the highest id it saw `settle` ago, never to the highest id now."""
    first = record(latency_ms=10)
    seen_at = timezone.now()
    assert aimetric_rollup(now=seen_at) == 0  # the id is noted, not rolled up
    later = record(latency_ms=20)
    assert aimetric_rollup(now=seen_at + timedelta(minutes=4)) == 0
    assert aimetric_rollup(now=seen_at + timedelta(minutes=5)) == 1  # up to `first`
    assert watermark() == first.pk  # and `later` is noted, at 5 minutes
    assert aimetric_rollup(now=seen_at + timedelta(minutes=9)) == 0
    assert aimetric_rollup(now=seen_at + timedelta(minutes=10)) == 1
    assert watermark() == later.pk
    assert_rollups_exact()


@pytest.mark.django_db(transaction=True)
def test_a_lower_id_committed_after_a_higher_one_is_not_skipped() -> None:
    """A writer takes id n and commits late; another takes n + 1 and commits first. Rolling up
    to the highest committed id at once would put n below the watermark before it is visible:
    it would never be counted. Waiting `settle` after seeing n + 1 lets the slow writer finish."""
    inserted, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                record(latency_ms=111)
                inserted.set()
                assert release.wait(timeout=30)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(slow_writer)
        assert inserted.wait(timeout=30)
        fast = record(latency_ms=222)  # committed, and the highest id
        seen_at = timezone.now()
        assert aimetric_rollup(now=seen_at) == 0
        release.set()
        slow.result(timeout=30)
    aimetric_rollup(now=seen_at + timedelta(minutes=5))
    assert watermark() == fast.pk
    assert_rollups_exact()
    assert sum(AiMetricHour.objects.values_list("calls", flat=True)) == 2


@pytest.mark.django_db(transaction=True)
def test_rollers_and_readers_at_once_count_each_row_once() -> None:
    """Four processes roll up in small batches while readers build the dashboard: each batch is
    added once, and every dashboard is the one of the rows (the readers read again when the
    watermark moves under them)."""
    rng = random.Random(3)
    since = datetime(2026, 11, 1, tzinfo=UTC)
    until = since + timedelta(days=2)
    photos = [uuid.uuid4() for _ in range(30)] + [None]
    insert_rows([random_row(rng, since + (until - since) * rng.random(), photos,
                            [None, uuid.uuid4(), uuid.uuid4()]) for _ in range(600)])  # fmt: skip
    expected = dashboard_build(since=since, until=until)
    latest = AiMetric.objects.latest("id").pk
    rolled: list[int] = []
    readings: list[Dashboard] = []
    barrier = threading.Barrier(6)

    def roller() -> None:
        try:
            barrier.wait(timeout=30)
            while watermark() < latest:
                moved = aimetric_rollup(settle=NOW, batch=13)
                rolled.append(moved)
                if not moved:  # another roller has the lock
                    time_module.sleep(0.01)
        finally:
            connection.close()

    def reader() -> None:
        try:
            barrier.wait(timeout=30)
            while watermark() < latest:
                readings.append(dashboard_build(since=since, until=until))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(roller) for _ in range(4)] + [pool.submit(reader) for _ in range(2)]
        for future in futures:
            future.result(timeout=300)
    assert sum(rolled) == 600  # each row added once
    assert_rollups_exact()
    assert readings and all(reading == expected for reading in readings)
    assert dashboard_build(since=since, until=until) == expected


@pytest.mark.django_db(transaction=True)
def test_a_job_finding_the_lock_taken_returns_at_once() -> None:
    aimetric_rollup(settle=NOW)  # the first run creates the watermark's row
    record(latency_ms=10)
    locked, release = threading.Event(), threading.Event()

    def holder() -> None:
        try:
            with transaction.atomic():
                assert aimetric_rollup(settle=NOW) == 1  # the lock is kept to the commit
                AiMetricRollup.objects.select_for_update().get()
                locked.set()
                assert release.wait(timeout=30)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(holder)
        assert locked.wait(timeout=30)
        record(latency_ms=20)
        assert aimetric_rollup(settle=NOW) == 0  # skipped: another process has it
        release.set()
        held.result(timeout=30)
    assert aimetric_rollup(settle=NOW) == 1
    assert_rollups_exact()


@pytest.mark.django_db
def test_rows_changed_after_their_rollup_count_again_after_a_rebuild() -> None:
    rng = random.Random(4)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    insert_rows([random_row(rng, start + timedelta(minutes=rng.randrange(0, 600)),
                            [uuid.uuid4(), None], [None]) for _ in range(60)])  # fmt: skip
    roll_up_all()
    ids = list(AiMetric.objects.order_by("id").values_list("id", flat=True))
    AiMetric.objects.filter(id__in=ids[:10]).update(created_at=start - timedelta(days=3))
    AiMetric.objects.filter(id__in=ids[10:20]).delete()
    assert actual_rollups() != expected_rollups(watermark())  # rolled-up rows are not re-read
    assert aimetric_rollup_rebuild() == ids[-1]
    assert_rollups_exact()


@pytest.mark.django_db
def test_no_trigger_is_left_on_the_metrics_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'aimetrics_aimetric'::regclass"
            " AND NOT tgisinternal"
        )
        assert cursor.fetchall() == []


# --- The dashboard against figures computed here from the rows ----------------------------------


@pytest.fixture(params=["not rolled up", "rolled up"])
def random_metrics(request: pytest.FixtureRequest, db: Any) -> Iterator[tuple[datetime, datetime]]:
    """About 3,000 calls over 40 days to 2026-11-28, some exactly on hour and window edges;
    read from AiMetric, or rolled up but for the last 300 inserted (dated anywhere)."""
    rng = random.Random(42)
    end = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    first = end - timedelta(days=40)
    photos = [uuid.uuid4() for _ in range(600)] + [None] * 30
    projects = [uuid.uuid4() for _ in range(30)] + [None] * 3
    moments = [first + (end - first) * rng.random() for _ in range(3000)]
    moments += [first + timedelta(hours=h) for h in range(0, 40 * 24, 7)]  # on the hour
    rows = [random_row(rng, at, photos, projects) for at in moments]
    insert_rows(rows[:-300])
    if request.param == "rolled up":
        roll_up_all()
    insert_rows(rows[-300:])
    yield first, end


def percentile_cont(ordered: list[int], fraction: float) -> float | None:
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bucket_start(moment: datetime, since: datetime, hourly: bool) -> datetime:
    """The hour (stepping in UTC from since's local hour) or local day of a moment."""
    if hourly:
        local = timezone.localtime(since).replace(minute=0, second=0, microsecond=0)
        first = local.astimezone(UTC)  # then steps of an hour in UTC
        return first + timedelta(hours=(moment - first) // timedelta(hours=1))
    day = timezone.localtime(moment).date()
    return timezone.make_aware(datetime.combine(day, time.min))


def reference(since: datetime, until: datetime) -> dict[str, Any]:
    """The dashboard's figures from the raw rows, by hand: exact, percentiles as percentile_cont."""
    rows: list[dict[str, Any]] = [
        dict(row)
        for row in AiMetric.objects.filter(created_at__gte=since, created_at__lt=until).values()
    ]
    hourly = until - since <= timedelta(days=7)

    def totals(group: list[dict[str, Any]]) -> tuple[Any, ...]:
        latencies = sorted(r["latency_ms"] for r in group)
        return (
            len(group),
            sum(r["success"] for r in group),
            sum(latencies) / len(group) if group else None,
            sum(r["tokens_in"] for r in group),
            sum(r["tokens_out"] for r in group),
            sum((r["cost_usd"] for r in group), Decimal("0")),
            *(percentile_cont(latencies, f) for f in (0.5, 0.95, 0.99)),
        )

    def grouped(key: Any, of: list[dict[str, Any]] = rows) -> dict[Any, list[dict[str, Any]]]:
        groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for row in of:
            groups[key(row)].append(row)
        return dict(sorted(groups.items(), key=lambda item: item[0]))

    def bucket(row: dict[str, Any]) -> datetime:
        return bucket_start(row["created_at"], since, hourly)

    def call(row: dict[str, Any]) -> tuple[str, str, str]:
        return row["provider"], row["model"], row["operation"]

    def by_count(item: tuple[Any, Any]) -> tuple[Any, Any]:
        return -item[1], item[0]

    failed = grouped(lambda r: r["error_type"] or "", [r for r in rows if not r["success"]])
    projects = grouped(lambda r: r["project_id"], [r for r in rows if r["project_id"]])
    days = grouped(lambda r: timezone.localtime(bucket(r)).date())
    return {
        "summary": totals(rows),
        "photos": len({r["photo_id"] for r in rows} - {None}),
        "by_call": {k: totals(g) for k, g in grouped(call).items()},
        "series": {k: totals(g) for k, g in grouped(bucket).items()},
        "failures": sorted(((k, len(g)) for k, g in failed.items()), key=by_count),
        "projects": sorted(((k, totals(g)[5]) for k, g in projects.items()), key=by_count),
        "days": {k: totals(g)[5] for k, g in days.items()},
    }


def close(approximate: float | None, exact: float | None) -> bool:
    assert approximate is not None and exact is not None
    return abs(approximate - exact) < HISTOGRAM_ERROR * exact + 1e-9


def assert_matches(dashboard: Dashboard, expected: dict[str, Any]) -> None:
    def check(figures: Any, latency: Latency | None, want: tuple[Any, ...]) -> None:
        calls, successes, mean, tokens_in, tokens_out, cost, p50, p95, p99 = want
        assert (figures.calls, figures.tokens_in, figures.tokens_out) == (
            calls,
            tokens_in,
            tokens_out,
        )
        assert figures.cost_usd == cost
        if latency is not None:
            assert figures.successes == successes
            assert latency.mean == pytest.approx(mean)
            for value, exact in ((latency.p50, p50), (latency.p95, p95), (latency.p99, p99)):
                assert close(value, exact), (value, exact)
        else:
            assert figures.failures == calls - successes
            assert close(figures.p95, p95), (figures.p95, p95)

    check(dashboard.summary, dashboard.summary.latency, expected["summary"])
    assert dashboard.summary.photos == expected["photos"]
    assert list(expected["by_call"]) == [
        (c.provider, c.model, c.operation) for c in dashboard.by_call
    ]
    for stats, want in zip(dashboard.by_call, expected["by_call"].values(), strict=True):
        check(stats, stats.latency, want)
    assert [b.start for b in dashboard.series] == list(expected["series"])
    for bucket, want in zip(dashboard.series, expected["series"].values(), strict=True):
        check(bucket, None, want)
    assert [(f.error_type, f.calls) for f in dashboard.failures] == expected["failures"]
    assert [(p.project_id, p.cost_usd) for p in dashboard.cost_by_project] == expected["projects"]
    assert {d.day: d.cost_usd for d in dashboard.cost_by_day} == expected["days"]  # fmt: skip


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
        (timedelta(days=33), timedelta(days=6)),  # the daylight-saving change, hour by hour
    ],
)
def test_dashboard_figures_equal_those_of_the_raw_rows(
    random_metrics: tuple[datetime, datetime],
    settings: Any,
    zone: str,
    offset: timedelta,
    span: timedelta,
) -> None:
    settings.TIME_ZONE = zone
    _, end = random_metrics
    until = end - offset
    dashboard = dashboard_build(since=until - span, until=until, top_projects=50)
    assert dashboard.summary.calls > 0
    assert_matches(dashboard, reference(until - span, until))


def test_a_window_across_the_daylight_saving_change_has_local_days(
    random_metrics: tuple[datetime, datetime], settings: Any
) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    since = datetime(2026, 10, 23, 22, 0, tzinfo=UTC)  # Oct 24, 00:00 in Paris (UTC+2)
    dashboard = dashboard_build(since=since, until=since + timedelta(days=9))
    starts = [bucket.start for bucket in dashboard.series[:3]]
    # Oct 25 has 25 hours: the next local midnight is 23:00 UTC.
    assert starts == [since, since + timedelta(days=1), since + timedelta(days=2, hours=1)]
    assert [d.day for d in dashboard.cost_by_day[:3]] == [
        date(2026, 10, 24),
        date(2026, 10, 25),
        date(2026, 10, 26),
    ]


def test_rolled_up_or_not_the_dashboard_is_the_same(
    random_metrics: tuple[datetime, datetime], settings: Any
) -> None:
    """Percentiles included: rows and rollups are summed into the same histogram edges."""
    settings.TIME_ZONE = "Europe/Paris"
    _, end = random_metrics
    windows = [(end - timedelta(days=30, minutes=13), end), (end - timedelta(hours=30), end)]
    before = [dashboard_build(since=since, until=until) for since, until in windows]
    roll_up_all()
    after = [dashboard_build(since=since, until=until) for since, until in windows]
    assert after == before
