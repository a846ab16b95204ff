"""The AI metrics dashboard's figures: one window of AiMetric rows, aggregated in the database.

Used by the admin page (`aimetrics.views`) and `manage.py ai_metrics_report`. Every figure is one
GROUP BY over the window; latency percentiles are PostgreSQL's `percentile_cont`, computed from the
ordered values in Python on other databases (SQLite, in development). The indexes these queries
need are declared on `AiMetric` (see its Meta).
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Aggregate, Avg, Count, FloatField, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from aimetrics import dashboard_pg
from aimetrics.models import AiMetric
from aimetrics.windows import Window

PERCENTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
USD_PLACES = Decimal("0.000001")  # AiMetric.cost_usd has 6 decimal places
# GROUP BY columns (as lists, the rows are plain dicts to the type checker).
CALL_KEYS = ["provider", "model", "operation"]
RETRIED_KEYS = ["photo_id", "project_id"]
SERIES_KEYS = ["start"]
PROJECT_KEYS = ["project_id"]


@dataclass(frozen=True, kw_only=True)
class Latency:
    """Milliseconds; None when there were no calls."""

    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True, kw_only=True)
class Totals:
    calls: int
    successes: int
    latency: Latency
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal

    @property
    def failures(self) -> int:
        return self.calls - self.successes

    @property
    def success_rate(self) -> float | None:
        """Successful calls / calls, 0–1."""
        return self.successes / self.calls if self.calls else None

    @property
    def success_percent(self) -> float | None:
        return None if self.success_rate is None else 100 * self.success_rate


@dataclass(frozen=True, kw_only=True)
class CallStats(Totals):
    """One provider, model and operation."""

    provider: str
    model: str
    operation: str


@dataclass(frozen=True, kw_only=True)
class Summary(Totals):
    """The whole window. `photos`: distinct photos with a call; `cost_per_photo`: cost / photos."""

    photos: int
    cost_per_photo: Decimal | None


@dataclass(frozen=True, kw_only=True)
class FailureCount:
    error_type: str  # "" when a failed call recorded no type
    calls: int


@dataclass(frozen=True, kw_only=True)
class RetriedPhoto:
    """A photo with calls made on a retry attempt (AiMetric.retries > 0)."""

    photo_id: uuid.UUID
    project_id: uuid.UUID | None
    calls: int
    failures: int
    max_retries: int
    cost_usd: Decimal
    last_call_at: datetime


@dataclass(frozen=True, kw_only=True)
class TimeBucket:
    """One hour or one day of the window (see Window.bucket)."""

    start: datetime
    calls: int
    failures: int
    p95: float | None
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal


@dataclass(frozen=True, kw_only=True)
class DayCost:
    day: date
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal


@dataclass(frozen=True, kw_only=True)
class ProjectCost:
    project_id: uuid.UUID
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal


@dataclass(frozen=True, kw_only=True)
class Dashboard:
    window: Window
    summary: Summary
    by_call: list[CallStats]
    failures: list[FailureCount]
    retried_photos: list[RetriedPhoto]  # the first `retried_limit`, most retried first
    retried_photo_count: int
    series: list[TimeBucket]  # only buckets with calls
    cost_by_day: list[DayCost]
    cost_by_project: list[ProjectCost]  # the top `top_projects` by cost


class PercentileCont(Aggregate):
    """PostgreSQL's `percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)`."""

    function = "percentile_cont"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)%(filter)s"
    output_field = FloatField()

    def __init__(self, expression: str, *, fraction: float, **extra: Any) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("a percentile fraction is between 0 and 1")
        # A float we chose, formatted as a number: nothing from the outside reaches the SQL.
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def percentile_cont(ordered: Sequence[float], fraction: float) -> float | None:
    """The same interpolation as PostgreSQL's percentile_cont, over values sorted ascending."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def dashboard_build(
    *,
    since: datetime,
    until: datetime,
    top_projects: int = 10,
    retried_limit: int = 50,
    percentiles_in_sql: bool | None = None,
) -> Dashboard:
    """All the dashboard's figures for `since` ≤ created_at < `until`, in six or seven queries.

    `percentiles_in_sql`: None computes percentiles with percentile_cont on PostgreSQL (and the
    figures per call and per hour/day with the queries of `dashboard_pg`), in Python elsewhere;
    tests force False on PostgreSQL to check that both give the same numbers.
    """
    window = Window(since=since, until=until)
    postgresql = connection.vendor == "postgresql"
    in_sql = postgresql if percentiles_in_sql is None else percentiles_in_sql and postgresql
    rows = AiMetric.objects.filter(created_at__gte=since, created_at__lt=until).order_by()
    with _aggregate_settings():
        summary = _summary(rows, in_sql)
        by_call = _by_call(rows, window, in_sql)
        failures = _failures(rows)
        retried, retried_count = _retried(rows, retried_limit)
        series = _series(rows, window, in_sql)
        by_project = _by_project(rows, top_projects)
    return Dashboard(
        window=window,
        summary=summary,
        by_call=by_call,
        failures=failures,
        retried_photos=retried,
        retried_photo_count=retried_count,
        series=series,
        cost_by_day=_by_day(series),
        cost_by_project=by_project,
    )


@contextmanager
def _aggregate_settings() -> Iterator[None]:
    """On PostgreSQL: sorts of a large window in memory rather than on disk, and no JIT, whose
    compile time costs more than it saves here (measured at 1M rows: README, "AI metrics")."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute("SET LOCAL jit = off")
        yield


def _usd(value: Decimal) -> Decimal:
    # Exact on PostgreSQL already (numeric); on SQLite, sums of decimals come back as floats.
    return value.quantize(USD_PLACES, ROUND_HALF_UP)


def _count(condition: Q | None = None) -> Count:
    # COUNT(created_at) counts rows (the column is never NULL) and, unlike COUNT(id), reads only
    # columns of the covering index; Django refuses COUNT(*) with a FILTER.
    return Count("created_at", filter=condition)


def _totals_aggregates() -> dict[str, Any]:
    return {
        "calls": _count(),
        "successes": _count(Q(success=True)),
        "mean": Avg("latency_ms"),
        "tokens_in": Sum("tokens_in", default=0),
        "tokens_out": Sum("tokens_out", default=0),
        "cost_usd": Sum("cost_usd", default=Decimal("0")),
    }


def _percentile_aggregates() -> dict[str, Any]:
    return {name: PercentileCont("latency_ms", fraction=f) for name, f in PERCENTILES.items()}


def _latency(row: dict[str, Any]) -> Latency:
    mean = row["mean"]
    return Latency(
        mean=float(mean) if mean is not None else None,
        p50=row["p50"],
        p95=row["p95"],
        p99=row["p99"],
    )


def _totals_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "calls": row["calls"],
        "successes": row["successes"],
        "latency": _latency(row),
        "tokens_in": row["tokens_in"],
        "tokens_out": row["tokens_out"],
        "cost_usd": _usd(row["cost_usd"]),
    }


def _with_python_percentiles(
    rows: QuerySet[AiMetric], groups: list[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Fills p50/p95/p99 of each group from its latencies, read in order (non-PostgreSQL)."""
    latencies: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for *key, latency in rows.order_by(*keys, "latency_ms").values_list(*keys, "latency_ms"):
        latencies[tuple(key)].append(latency)
    for group in groups:
        ordered = latencies[tuple(group[k] for k in keys)]
        for name, fraction in PERCENTILES.items():
            value = percentile_cont(ordered, fraction)
            group[name] = float(value) if value is not None else None


def _summary(rows: QuerySet[AiMetric], in_sql: bool) -> Summary:
    aggregates = {**_totals_aggregates(), "photos": Count("photo_id", distinct=True)}
    if in_sql:
        aggregates |= _percentile_aggregates()
    row = rows.aggregate(**aggregates)
    if not in_sql:
        _with_python_percentiles(rows, [row], [])
    photos = row["photos"]
    cost_per_photo = (
        (row["cost_usd"] / photos).quantize(USD_PLACES, ROUND_HALF_UP) if photos else None
    )
    return Summary(**_totals_fields(row), photos=photos, cost_per_photo=cost_per_photo)


def _by_call(rows: QuerySet[AiMetric], window: Window, in_sql: bool) -> list[CallStats]:
    if in_sql:
        groups = dashboard_pg.by_call_rows(window)
    else:
        groups = list(rows.values(*CALL_KEYS).annotate(**_totals_aggregates()).order_by(*CALL_KEYS))
        _with_python_percentiles(rows, groups, CALL_KEYS)
    return [
        CallStats(
            **_totals_fields(g), provider=g["provider"], model=g["model"], operation=g["operation"]
        )
        for g in groups
    ]


def _failures(rows: QuerySet[AiMetric]) -> list[FailureCount]:
    groups = (
        rows.filter(success=False)
        .values("error_type")
        .annotate(calls=_count())
        .order_by("-calls", "error_type")
    )
    return [FailureCount(error_type=g["error_type"] or "", calls=g["calls"]) for g in groups]


def _retried(rows: QuerySet[AiMetric], limit: int) -> tuple[list[RetriedPhoto], int]:
    retried = rows.filter(retries__gt=0, photo_id__isnull=False)
    groups = (
        retried.values(*RETRIED_KEYS)
        .annotate(
            calls=_count(),
            failures=_count(Q(success=False)),
            max_retries=Max("retries"),
            cost_usd=Sum("cost_usd"),
            last_call_at=Max("created_at"),
        )
        .order_by("-max_retries", "-last_call_at", "photo_id")[:limit]
    )
    photos = [RetriedPhoto(**(g | {"cost_usd": _usd(g["cost_usd"])})) for g in groups]
    if len(photos) < limit:
        return photos, len(photos)
    return photos, retried.aggregate(n=Count("photo_id", distinct=True))["n"]


def _series(rows: QuerySet[AiMetric], window: Window, in_sql: bool) -> list[TimeBucket]:
    if in_sql:
        groups = dashboard_pg.series_rows(window)
    else:
        trunc = TruncHour if window.bucket == "hour" else TruncDay
        bucketed = rows.annotate(start=trunc("created_at"))
        aggregates = {
            "calls": _count(),
            "failures": _count(Q(success=False)),
            "tokens_in": Sum("tokens_in", default=0),
            "tokens_out": Sum("tokens_out", default=0),
            "cost_usd": Sum("cost_usd", default=Decimal("0")),
        }
        groups = list(bucketed.values(*SERIES_KEYS).annotate(**aggregates).order_by(*SERIES_KEYS))
        _with_python_percentiles(bucketed, groups, SERIES_KEYS)
    return [
        TimeBucket(
            start=g["start"],
            calls=g["calls"],
            failures=g["failures"],
            p95=g["p95"],
            tokens_in=g["tokens_in"],
            tokens_out=g["tokens_out"],
            cost_usd=_usd(g["cost_usd"]),
        )
        for g in groups
    ]


def _by_day(series: list[TimeBucket]) -> list[DayCost]:
    """Days from the series (hours add up exactly: sums of integers and Decimals)."""
    days: dict[date, list[Any]] = {}
    for bucket in series:
        day = timezone.localtime(bucket.start).date()
        totals = days.setdefault(day, [0, 0, 0, Decimal("0")])
        totals[0] += bucket.calls
        totals[1] += bucket.tokens_in
        totals[2] += bucket.tokens_out
        totals[3] += bucket.cost_usd
    return [
        DayCost(day=day, calls=calls, tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost)
        for day, (calls, tokens_in, tokens_out, cost) in sorted(days.items())
    ]


def _by_project(rows: QuerySet[AiMetric], top: int) -> list[ProjectCost]:
    groups = (
        rows.filter(project_id__isnull=False)
        .values(*PROJECT_KEYS)
        .annotate(
            calls=_count(),
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            cost_usd=Sum("cost_usd"),
        )
        .order_by("-cost_usd", "project_id")[:top]
    )
    return [ProjectCost(**(g | {"cost_usd": _usd(g["cost_usd"])})) for g in groups]
