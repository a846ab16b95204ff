"""The AI metrics dashboard's figures: one window of AiMetric calls.

Used by the admin page (`aimetrics.views`) and `manage.py ai_metrics_report`. Totals, latency,
failures, photos and costs come from `aimetrics.figures` (the hourly rollups for the whole UTC
hours of the window, AiMetric for the rest: exact, percentiles within 1 %); the retried photos
from the raw rows, through the partial index `aimetric_retried_created`.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Count, Max, Q, QuerySet, Sum
from django.utils import timezone

from aimetrics.figures import (
    Cut,
    Series,
    bucket_bounds,
    call_sums,
    latency_histograms,
    photo_count,
    project_sums,
    read_consistent,
)
from aimetrics.models import AiMetric, AnswerReuse
from aimetrics.rollup import SUMS, latency_percentile, usd
from aimetrics.windows import Window

PERCENTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
USD_PLACES = Decimal("0.000001")  # AiMetric.cost_usd has 6 decimal places
RETRIED_KEYS = ["photo_id", "project_id"]  # a list: the rows are plain dicts to the type checker
CALL = ["provider", "model", "operation"]


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
    #: Photos that reused an identical image's answer (no provider call), and what they saved.
    reused: int = 0
    reused_saved_usd: Decimal = Decimal("0")


def dashboard_build(
    *, since: datetime, until: datetime, top_projects: int = 10, retried_limit: int = 50
) -> Dashboard:
    """All the dashboard's figures for `since` ≤ created_at < `until`, in at most ten queries."""
    window = Window(since=since, until=until)
    figures = read_consistent(lambda watermark: _Figures.read(window, watermark))
    rows = AiMetric.objects.filter(created_at__gte=since, created_at__lt=until).order_by()
    retried, retried_count = _retried(rows, retried_limit)
    series = figures.series()
    reuses = AnswerReuse.objects.filter(created_at__gte=since, created_at__lt=until).aggregate(
        count=Count("id"), saved=Sum("saved_usd")
    )
    return Dashboard(
        window=window,
        summary=figures.summary(),
        by_call=figures.by_call(),
        failures=figures.failures(),
        retried_photos=retried,
        retried_photo_count=retried_count,
        series=series,
        cost_by_day=_by_day(series),
        cost_by_project=figures.projects(top_projects),
        reused=reuses["count"],
        reused_saved_usd=reuses["saved"] or Decimal("0"),
    )


@dataclass(frozen=True)
class _Figures:
    """What `aimetrics.figures` returns for a window, at one position of the watermark."""

    calls: list[dict[str, Any]]  # per bucket of the series and call key
    by_call_latency: dict[tuple[Any, ...], dict[int, int]]
    series_latency: dict[tuple[Any, ...], dict[int, int]]
    projects_: list[dict[str, Any]]
    photos: int

    @classmethod
    def read(cls, window: Window, watermark: int) -> _Figures:
        whole = Cut.of([(window.since, window.until)], watermark=watermark)
        # Buckets' edges may fall inside UTC hours (zones not a whole number of hours off UTC):
        # those hours are then read from AiMetric, so that each row lands in its own bucket.
        buckets = Cut.of([b[1:] for b in bucket_bounds(window)], watermark=watermark)
        series = Series.of(window)
        return cls(
            calls=call_sums(buckets, series=series),
            by_call_latency=latency_histograms(whole, by=CALL),
            series_latency=latency_histograms(buckets, series=series),
            projects_=project_sums(whole),
            photos=photo_count(window, watermark=watermark),
        )

    def _totals(self, key: Callable[[dict[str, Any]], Any]) -> dict[Any, dict[str, Any]]:
        """The calls' sums added up per `key(row)`, with the successful calls counted."""
        totals: dict[Any, dict[str, Any]] = {}
        for row in self.calls:
            group = totals.setdefault(key(row), dict.fromkeys(("successes", *SUMS), 0))
            for name in SUMS:
                group[name] += row[name]
            if row["success"]:
                group["successes"] += row["calls"]
        return totals

    @staticmethod
    def _fields(totals: dict[str, Any], histogram: dict[int, int]) -> dict[str, Any]:
        calls = totals["calls"]
        return {
            "calls": calls,
            "successes": totals["successes"],
            "latency": Latency(
                mean=totals["latency_ms_sum"] / calls if calls else None,
                **{name: latency_percentile(histogram, f) for name, f in PERCENTILES.items()},
            ),
            "tokens_in": totals["tokens_in"],
            "tokens_out": totals["tokens_out"],
            "cost_usd": usd(totals["cost_usd"]),
        }

    def summary(self) -> Summary:
        totals = self._totals(lambda row: None).get(None) or dict.fromkeys(("successes", *SUMS), 0)
        histogram: dict[int, int] = defaultdict(int)
        for call in self.by_call_latency.values():
            for edge, count in call.items():
                histogram[edge] += count
        fields = self._fields(totals, histogram)
        photos = self.photos
        cost_per_photo = (
            (fields["cost_usd"] / photos).quantize(USD_PLACES, ROUND_HALF_UP) if photos else None
        )
        return Summary(**fields, photos=photos, cost_per_photo=cost_per_photo)

    def by_call(self) -> list[CallStats]:
        totals = self._totals(lambda row: tuple(row[k] for k in CALL))
        return [
            CallStats(
                **self._fields(totals[key], self.by_call_latency.get(key, {})),
                provider=key[0],
                model=key[1],
                operation=key[2],
            )
            for key in sorted(totals)
        ]

    def series(self) -> list[TimeBucket]:
        totals = self._totals(lambda row: row["start"])
        return [
            TimeBucket(
                start=start,
                calls=group["calls"],
                failures=group["calls"] - group["successes"],
                p95=latency_percentile(self.series_latency.get((start,), {}), PERCENTILES["p95"]),
                tokens_in=group["tokens_in"],
                tokens_out=group["tokens_out"],
                cost_usd=usd(group["cost_usd"]),
            )
            for start, group in sorted(totals.items())
        ]

    def failures(self) -> list[FailureCount]:
        counts: dict[str, int] = defaultdict(int)
        for row in self.calls:
            if not row["success"]:
                counts[row["error"]] += row["calls"]
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return [FailureCount(error_type=error, calls=calls) for error, calls in ordered]

    def projects(self, top: int) -> list[ProjectCost]:
        ordered = sorted(self.projects_, key=lambda g: (-g["cost_usd"], g["project_id"]))
        return [
            ProjectCost(
                project_id=g["project_id"],
                calls=g["calls"],
                tokens_in=g["tokens_in"],
                tokens_out=g["tokens_out"],
                cost_usd=usd(g["cost_usd"]),
            )
            for g in ordered[:top]
        ]


def _retried(rows: QuerySet[AiMetric], limit: int) -> tuple[list[RetriedPhoto], int]:
    """The most retried photos. Picked first by a GROUP BY with two max() only, then summed for
    those alone: numeric sums for every retried photo would cost more than the pick itself."""
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
            # COUNT(created_at): a column of the partial index, so the heap is not read for it
            calls=Count("created_at"),
            failures=Count("created_at", filter=Q(success=False)),
            cost_usd=Sum("cost_usd"),
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
                cost_usd=usd(totals["cost_usd"]),
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
