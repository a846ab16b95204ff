"""Two dashboard figures of the exact path ("raw") written for PostgreSQL: one index range per
group instead of a sort; and the buckets of a window, which the rollup path cuts along too.

GROUP BY with percentile_cont sorts every row of the window by the group first (no hash
aggregation with ordered-set aggregates). Here each group is its own range of an index, read in a
LATERAL subquery: per provider/model/operation a range of `aimetric_call_created`, per hour or day
a range of `aimetric_created_cover`. Same figures as the ORM queries in `aimetrics.dashboard_raw`
(tests compare them); measured at 1M rows in README ("AI metrics").
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from aimetrics.models import AiMetric
from aimetrics.windows import Window

_FIGURES = """
    count(*) AS calls,
    count(*) FILTER (WHERE m.success) AS successes,
    count(*) FILTER (WHERE NOT m.success) AS failures,
    avg(m.latency_ms)::float8 AS mean,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY m.latency_ms) AS p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY m.latency_ms) AS p95,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY m.latency_ms) AS p99,
    coalesce(sum(m.tokens_in), 0) AS tokens_in,
    coalesce(sum(m.tokens_out), 0) AS tokens_out,
    coalesce(sum(m.cost_usd), 0) AS cost_usd
"""

# The distinct (provider, model, operation) come from a loose scan of the index: one probe each.
_BY_CALL = """
WITH RECURSIVE calls AS (
    (SELECT provider, model, operation FROM {table} ORDER BY provider, model, operation LIMIT 1)
    UNION ALL
    SELECT next.provider, next.model, next.operation
    FROM calls CROSS JOIN LATERAL (
        SELECT provider, model, operation FROM {table} AS m
        WHERE (m.provider, m.model, m.operation) > (calls.provider, calls.model, calls.operation)
        ORDER BY provider, model, operation LIMIT 1
    ) AS next
)
SELECT calls.provider, calls.model, calls.operation, figures.*
FROM calls CROSS JOIN LATERAL (
    SELECT {figures}
    FROM {table} AS m
    WHERE m.provider = calls.provider AND m.model = calls.model
      AND m.operation = calls.operation AND m.created_at >= %s AND m.created_at < %s
) AS figures
WHERE figures.calls > 0
ORDER BY calls.provider, calls.model, calls.operation
"""

_SERIES = """
SELECT buckets.start, figures.*
FROM unnest(%s::timestamptz[], %s::timestamptz[], %s::timestamptz[]) AS buckets(start, low, high)
CROSS JOIN LATERAL (
    SELECT {figures}
    FROM {table} AS m
    WHERE m.created_at >= buckets.low AND m.created_at < buckets.high
) AS figures
WHERE figures.calls > 0
ORDER BY buckets.start
"""


def _rows(sql: str, params: list[Any]) -> list[dict[str, Any]]:
    table = connection.ops.quote_name(AiMetric._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql.format(table=table, figures=_FIGURES), params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def by_call_rows(window: Window) -> list[dict[str, Any]]:
    """Figures per provider, model and operation, ordered by them."""
    return _rows(_BY_CALL, [window.since, window.until])


def bucket_bounds(window: Window) -> list[tuple[datetime, datetime, datetime]]:
    """(start, first instant, end) of each hour or day of the window, in the current time zone,
    the same buckets as Trunc; the first and last are cut to the window."""
    local = timezone.localtime(window.since)
    if window.bucket == "hour":  # hours step in UTC: exact across daylight-saving changes
        start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    else:
        start = timezone.make_aware(datetime.combine(local.date(), time.min))
    bounds = []
    while start < window.until:
        if window.bucket == "hour":
            end = start + timedelta(hours=1)
        else:
            next_day = timezone.localtime(start).date() + timedelta(days=1)
            end = timezone.make_aware(datetime.combine(next_day, time.min))
        bounds.append((start, max(start, window.since), min(end, window.until)))
        start = end
    return bounds


def series_rows(window: Window) -> list[dict[str, Any]]:
    """Figures per hour or day (only those with calls), in time order."""
    starts, lows, highs = (list(column) for column in zip(*bucket_bounds(window), strict=True))
    return _rows(_SERIES, [starts, lows, highs])
