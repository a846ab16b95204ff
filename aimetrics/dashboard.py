"""The AI metrics dashboard's figures: one window of AiMetric rows, aggregated in the database.

Used by the admin page (`aimetrics.views`) and `manage.py ai_metrics_report`. On PostgreSQL the
totals, latencies and costs come from hourly rollups kept by triggers (`dashboard_rollup`: exact
counts and sums, percentiles within 1 %); elsewhere (SQLite, in development) from the raw rows
(`dashboard_raw`: exact, percentiles computed in Python). Distinct photos, failures by error type
and retried photos are counted over the raw rows on every database, through the indexes declared
on `AiMetric` (see its Meta).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from django.db import connection, transaction
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.utils import timezone

from aimetrics import dashboard_raw, dashboard_rollup
from aimetrics.dashboard_raw import count_rows
from aimetrics.models import AiMetric
from aimetrics.windows import Window

Method = Literal["rollup", "raw", "python"]
PERCENTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
USD_PLACES = Decimal("0.000001")  # AiMetric.cost_usd has 6 decimal places
RETRIED_KEYS = ["photo_id", "project_id"]  # a list: the rows are plain dicts to the type checker


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


def dashboard_build(
    *,
    since: datetime,
    until: datetime,
    top_projects: int = 10,
    retried_limit: int = 50,
    method: Method | None = None,
) -> Dashboard:
    """All the dashboard's figures for `since` ≤ created_at < `until`, in six to eight queries.

    `method`: None picks "rollup" on PostgreSQL, "python" elsewhere (`dashboard_method`).
    - "rollup" (PostgreSQL): the hourly rollups for the whole hours of the window, the raw rows
      for the rest (`dashboard_rollup`); every count, sum and cost exact, latency percentiles
      within 1 % of percentile_cont.
    - "raw" (PostgreSQL): every figure from the raw rows, percentiles with percentile_cont (and
      the queries of `dashboard_pg`); exact, but seconds at a million rows.
    - "python": the raw rows, percentiles computed in Python, on any database (SQLite).
    Tests compare the three on the same rows.
    """
    method = method or dashboard_method()
    if method != "python" and connection.vendor != "postgresql":
        raise ValueError(f"the {method!r} method needs PostgreSQL")
    window = Window(since=since, until=until)
    rows = AiMetric.objects.filter(created_at__gte=since, created_at__lt=until).order_by()
    with _aggregate_settings(method):
        summary, by_call, series = _figures(rows, window, method)
        photos = _photos(rows, window, method)
        failures = _failures(rows)
        retried, retried_count = _retried(rows, retried_limit)
        by_project = _projects(rows, window, method, top_projects)
    buckets = [_time_bucket(row) for row in series]
    return Dashboard(
        window=window,
        summary=_summary(summary, photos),
        by_call=[_call_stats(row) for row in by_call],
        failures=failures,
        retried_photos=retried,
        retried_photo_count=retried_count,
        series=buckets,
        cost_by_day=_by_day(buckets),
        cost_by_project=by_project,
    )


def dashboard_method() -> Method:
    """What `dashboard_build` uses by default on this database."""
    return "rollup" if connection.vendor == "postgresql" else "python"


@contextmanager
def _aggregate_settings(method: Method) -> Iterator[None]:
    """On PostgreSQL: sorts of a large window in memory rather than on disk, and no JIT, whose
    compile time costs more than it saves here (measured at 1M rows: README, "AI metrics")."""
    if connection.vendor != "postgresql":
        yield
        return
    settings = {"work_mem": "64MB", "jit": "off"}
    if method == "rollup":  # small reads: starting parallel workers costs more than it saves
        settings["max_parallel_workers_per_gather"] = "0"
    with transaction.atomic(), connection.cursor() as cursor:
        # One statement for all (set_config(…, true) is SET LOCAL): names and values are ours.
        cursor.execute(
            "SELECT " + ", ".join(f"set_config('{k}', '{v}', true)" for k, v in settings.items())
        )
        yield


def _usd(value: Decimal) -> Decimal:
    # Exact on PostgreSQL already (numeric); on SQLite, sums of decimals come back as floats.
    return value.quantize(USD_PLACES, ROUND_HALF_UP)


def _figures(
    rows: QuerySet[AiMetric], window: Window, method: Method
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Totals and latency of the whole window, per call and per bucket, as rows."""
    if method == "rollup":
        figures = dashboard_rollup.figures(
            window, percentiles=PERCENTILES, series_percentiles={"p95": PERCENTILES["p95"]}
        )
        return figures.summary, figures.by_call, figures.series
    options: dict[str, Any] = {"in_sql": method == "raw", "percentiles": PERCENTILES}
    return (
        dashboard_raw.summary_row(rows, **options),
        dashboard_raw.by_call_rows(rows, window, **options),
        dashboard_raw.series_rows(rows, window, **options),
    )


def _photos(rows: QuerySet[AiMetric], window: Window, method: Method) -> int:
    """Distinct photos with a call in the window (exact on every path)."""
    if method == "rollup":
        return dashboard_rollup.photos(window)
    return rows.filter(photo_id__isnull=False).values("photo_id").distinct().count()


def _projects(
    rows: QuerySet[AiMetric], window: Window, method: Method, top: int
) -> list[ProjectCost]:
    if method == "rollup":
        groups = dashboard_rollup.projects(window, top=top)
    else:
        groups = dashboard_raw.project_rows(rows, top=top)
    return [ProjectCost(**(g | {"cost_usd": _usd(g["cost_usd"])})) for g in groups]


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


def _summary(row: dict[str, Any], photos: int) -> Summary:
    cost_per_photo = (
        (row["cost_usd"] / photos).quantize(USD_PLACES, ROUND_HALF_UP) if photos else None
    )
    return Summary(**_totals_fields(row), photos=photos, cost_per_photo=cost_per_photo)


def _call_stats(row: dict[str, Any]) -> CallStats:
    return CallStats(
        **_totals_fields(row),
        provider=row["provider"],
        model=row["model"],
        operation=row["operation"],
    )


def _time_bucket(row: dict[str, Any]) -> TimeBucket:
    return TimeBucket(
        start=row["start"],
        calls=row["calls"],
        failures=row["failures"],
        p95=row["p95"],
        tokens_in=row["tokens_in"],
        tokens_out=row["tokens_out"],
        cost_usd=_usd(row["cost_usd"]),
    )


def _failures(rows: QuerySet[AiMetric]) -> list[FailureCount]:
    groups = (
        rows.filter(success=False)
        .values("error_type")
        .annotate(calls=count_rows())
        .order_by("-calls", "error_type")
    )
    return [FailureCount(error_type=g["error_type"] or "", calls=g["calls"]) for g in groups]


def _retried(rows: QuerySet[AiMetric], limit: int) -> tuple[list[RetriedPhoto], int]:
    """The most retried photos. Picked first by a GROUP BY with two max() only, then summed for
    those alone: numeric sums for every retried photo doubled the time (README, "AI metrics")."""
    retried = rows.filter(retries__gt=0, photo_id__isnull=False)
    top = list(
        retried.values(*RETRIED_KEYS)
        .annotate(max_retries=Max("retries"), last_call_at=Max("created_at"))
        .order_by("-max_retries", "-last_call_at", "photo_id")[:limit]
    )
    sums = (
        retried.filter(photo_id__in=[g["photo_id"] for g in top])
        .values(*RETRIED_KEYS)
        .annotate(
            calls=count_rows(), failures=count_rows(Q(success=False)), cost_usd=Sum("cost_usd")
        )
        .order_by()
    )
    by_key = {(g["photo_id"], g["project_id"]): g for g in sums} if top else {}
    photos = []
    for g in top:
        totals = by_key[g["photo_id"], g["project_id"]]
        photos.append(
            RetriedPhoto(
                **g,
                calls=totals["calls"],
                failures=totals["failures"],
                cost_usd=_usd(totals["cost_usd"]),
            )
        )
    if len(photos) < limit:
        return photos, len(photos)
    return photos, retried.aggregate(n=Count("photo_id", distinct=True))["n"]


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
