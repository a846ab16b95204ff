"""The dashboard's figures read from the raw AiMetric rows: exact, percentiles included.

The only path on SQLite (development), where latency percentiles are computed in Python with
percentile_cont's interpolation, and on PostgreSQL the reference the rollup path
(`dashboard_rollup`) is tested against: percentile_cont in SQL, the figures per call and per
hour/day through the queries of `dashboard_pg`. At a million rows this takes seconds (README,
"AI metrics"). Each function returns rows (dicts) shaped like those of `dashboard_rollup`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db.models import Aggregate, Avg, Count, FloatField, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour

from aimetrics import dashboard_pg
from aimetrics.models import AiMetric
from aimetrics.windows import Window

# GROUP BY columns (as lists, the rows are plain dicts to the type checker).
CALL_KEYS = ["provider", "model", "operation"]
SERIES_KEYS = ["start"]
PROJECT_KEYS = ["project_id"]


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


def count_rows(condition: Q | None = None) -> Count:
    """COUNT(created_at) counts rows (the column is never NULL) and, unlike COUNT(id), reads only
    columns of the covering index; Django refuses COUNT(*) with a FILTER."""
    return Count("created_at", filter=condition)


def _totals_aggregates() -> dict[str, Any]:
    return {
        "calls": count_rows(),
        "successes": count_rows(Q(success=True)),
        "mean": Avg("latency_ms"),
        "tokens_in": Sum("tokens_in", default=0),
        "tokens_out": Sum("tokens_out", default=0),
        "cost_usd": Sum("cost_usd", default=Decimal("0")),
    }


def _with_python_percentiles(
    rows: QuerySet[AiMetric],
    groups: list[dict[str, Any]],
    keys: Sequence[str],
    percentiles: dict[str, float],
) -> None:
    """Fills the percentiles of each group from its latencies, read in order."""
    latencies: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for *key, latency in rows.order_by(*keys, "latency_ms").values_list(*keys, "latency_ms"):
        latencies[tuple(key)].append(latency)
    for group in groups:
        ordered = latencies[tuple(group[k] for k in keys)]
        for name, fraction in percentiles.items():
            value = percentile_cont(ordered, fraction)
            group[name] = float(value) if value is not None else None


def summary_row(
    rows: QuerySet[AiMetric], *, in_sql: bool, percentiles: dict[str, float]
) -> dict[str, Any]:
    """The whole window's totals and latency."""
    aggregates = _totals_aggregates()
    if in_sql:
        aggregates |= {
            name: PercentileCont("latency_ms", fraction=f) for name, f in percentiles.items()
        }
    row = rows.aggregate(**aggregates)
    if not in_sql:
        _with_python_percentiles(rows, [row], [], percentiles)
    return row


def by_call_rows(
    rows: QuerySet[AiMetric], window: Window, *, in_sql: bool, percentiles: dict[str, float]
) -> list[dict[str, Any]]:
    """Totals and latency per provider, model and operation, ordered by them."""
    if in_sql:
        return dashboard_pg.by_call_rows(window)
    groups = list(rows.values(*CALL_KEYS).annotate(**_totals_aggregates()).order_by(*CALL_KEYS))
    _with_python_percentiles(rows, groups, CALL_KEYS, percentiles)
    return groups


def series_rows(
    rows: QuerySet[AiMetric], window: Window, *, in_sql: bool, percentiles: dict[str, float]
) -> list[dict[str, Any]]:
    """Totals and latency per hour or day (those with calls), in time order."""
    if in_sql:
        return dashboard_pg.series_rows(window)
    trunc = TruncHour if window.bucket == "hour" else TruncDay
    bucketed = rows.annotate(start=trunc("created_at"))
    aggregates = {
        "calls": count_rows(),
        "failures": count_rows(Q(success=False)),
        "tokens_in": Sum("tokens_in", default=0),
        "tokens_out": Sum("tokens_out", default=0),
        "cost_usd": Sum("cost_usd", default=Decimal("0")),
    }
    groups = list(bucketed.values(*SERIES_KEYS).annotate(**aggregates).order_by(*SERIES_KEYS))
    _with_python_percentiles(bucketed, groups, SERIES_KEYS, percentiles)
    return groups


def project_rows(rows: QuerySet[AiMetric], *, top: int) -> list[dict[str, Any]]:
    """Calls, tokens and cost of the `top` projects by cost (calls without a project left out)."""
    return list(
        rows.filter(project_id__isnull=False)
        .values(*PROJECT_KEYS)
        .annotate(
            calls=count_rows(),
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            cost_usd=Sum("cost_usd"),
        )
        .order_by("-cost_usd", "project_id")[:top]
    )
