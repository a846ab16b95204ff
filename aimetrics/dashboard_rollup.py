"""The dashboard's figures from the hourly rollups (PostgreSQL), exact but for the percentiles.

The window is cut along the buckets of its series (hours, or local days beyond 7 days): the whole
UTC hours inside each bucket are read from the rollup tables that triggers keep (migration 0003 of
aimetrics), the rest — the partial hours at the window's edges, and bucket edges that fall inside
an hour (time zones whose offset is not whole hours) — from the raw rows, summed the same way.
Counts, sums, means, tokens and costs are therefore the exact figures of the raw rows. Latency
percentiles come from the rollups' histograms (buckets ×1.02 wide; per UTC day for the whole days
of a bucket, per hour for the rest): percentile_cont's interpolation between the two ranks it
uses, each read as its bucket's middle, within 1 % of percentile_cont itself (README, "AI
metrics"). The raw-row queries are in `dashboard_raw` and `dashboard_pg`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection

from aimetrics.dashboard_pg import bucket_bounds
from aimetrics.windows import Window

Piece = tuple[datetime, datetime, datetime]  # (bucket start, first instant, end)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def _pieces(*names: str) -> str:
    """CTEs of (start, low, high) pieces, one per name, from the parameters `<name>_starts`…"""
    return "WITH " + ", ".join(
        f"""{name}s AS (
    SELECT * FROM unnest(%({name}_starts)s::timestamptz[], %({name}_lows)s::timestamptz[],
                         %({name}_highs)s::timestamptz[]) AS b(start, low, high)
)"""
        for name in names
    )


# What a GROUPING SETS row adds up: GROUPING(provider, start) is 3 for the whole window, 1 for one
# provider/model/operation, 2 for one bucket of the series.
SUMMARY, BY_CALL, SERIES = 3, 1, 2
_KIND = "GROUPING(provider, start) AS kind"

_TOTALS = f"""{_pieces("hour", "edge")},
calls AS (
    SELECT b.start, h.provider, h.model, h.operation, h.calls, h.successes, h.latency_ms_sum,
           h.tokens_in, h.tokens_out, h.cost_usd
    FROM hours AS b JOIN aimetrics_aimetrichour AS h ON h.hour >= b.low AND h.hour < b.high
    UNION ALL
    SELECT b.start, m.provider, m.model, m.operation, 1, m.success::int, m.latency_ms,
           m.tokens_in, m.tokens_out, m.cost_usd
    FROM edges AS b JOIN aimetrics_aimetric AS m ON m.created_at >= b.low AND m.created_at < b.high
)
SELECT {_KIND}, start, provider, model, operation,
       coalesce(sum(calls), 0)::bigint AS calls,
       coalesce(sum(successes), 0)::bigint AS successes,
       (sum(latency_ms_sum)::numeric / nullif(sum(calls), 0))::float8 AS mean,
       coalesce(sum(tokens_in), 0)::bigint AS tokens_in,
       coalesce(sum(tokens_out), 0)::bigint AS tokens_out,
       coalesce(sum(cost_usd), 0) AS cost_usd
FROM calls
GROUP BY GROUPING SETS ((), (provider, model, operation), (start))
ORDER BY kind, provider, model, operation, start
"""

# Per group, the histogram in bucket order with its running count (`upto`: calls in this bucket
# and below). The element of 0-based rank k lies in the first bucket whose `upto` exceeds k.
# Filled in by `_percentiles_sql`: the groups (_BY_CALL, _SERIES), the percentiles' ranks, values.
_PERCENTILES = f"""{_pieces("day", "hour", "edge")},
latencies AS (
    SELECT b.start, d.provider, d.model, d.operation, d.bucket, d.calls
    FROM days AS b
    JOIN aimetrics_aimetricdaylatency AS d ON d.day >= b.low AND d.day < b.high
    UNION ALL
    SELECT b.start, h.provider, h.model, h.operation, h.bucket, h.calls
    FROM hours AS b
    JOIN aimetrics_aimetrichourlatency AS h ON h.hour >= b.low AND h.hour < b.high
    UNION ALL
    SELECT b.start, m.provider, m.model, m.operation, aimetric_latency_bucket(m.latency_ms), 1
    FROM edges AS b JOIN aimetrics_aimetric AS m ON m.created_at >= b.low AND m.created_at < b.high
), histograms AS (
    -- integer: window sums of integers are bigint, not numeric, whose casts to float8 (below)
    -- are slow; one bucket of one group never holds 2^31 calls
    SELECT {{kind}} AS kind, {{select}}, bucket, sum(calls)::integer AS calls
    FROM latencies
    GROUP BY {{grouping}}
), ranked AS (
    SELECT *,
        sum(calls) OVER (PARTITION BY kind, {{columns}} ORDER BY bucket ROWS UNBOUNDED PRECEDING)
            AS upto,
        sum(calls) OVER (PARTITION BY kind, {{columns}}) AS n
    FROM histograms
), ranks AS (
    SELECT kind, {{columns}}, {{ranks}}
    FROM ranked
    GROUP BY kind, {{columns}}
)
SELECT kind, {{columns}}, {{values}}
FROM ranks
"""
# The whole window and each provider/model/operation; then each bucket of the series.
_COLUMNS = "start, provider, model, operation"
_BY_CALL = {
    "kind": f"CASE WHEN GROUPING(provider) = 1 THEN {SUMMARY} ELSE {BY_CALL} END",
    "select": "NULL::timestamptz AS start, provider, model, operation",
    "grouping": "GROUPING SETS ((bucket), (provider, model, operation, bucket))",
}
_SERIES = {
    "kind": str(SERIES),
    "select": "start, NULL::text AS provider, NULL::text AS model, NULL::text AS operation",
    "grouping": "start, bucket",
}

_PROJECTS = f"""{_pieces("hour", "edge")},
projects AS (
    SELECT p.project_id, p.calls, p.tokens_in, p.tokens_out, p.cost_usd
    FROM hours AS b JOIN aimetrics_aimetrichourproject AS p ON p.hour >= b.low AND p.hour < b.high
    UNION ALL
    SELECT m.project_id, 1, m.tokens_in, m.tokens_out, m.cost_usd
    FROM edges AS b JOIN aimetrics_aimetric AS m ON m.created_at >= b.low AND m.created_at < b.high
    WHERE m.project_id IS NOT NULL
)
SELECT project_id, sum(calls)::bigint AS calls, sum(tokens_in)::bigint AS tokens_in,
       sum(tokens_out)::bigint AS tokens_out, sum(cost_usd) AS cost_usd
FROM projects
GROUP BY project_id
ORDER BY cost_usd DESC, project_id
LIMIT %(top)s
"""


# Photos of the whole hours [first, last) — each counted at its first hour in that range — plus
# those of the rest of the window with no call in these hours (constant bounds: the planner sees
# how few rows these edges hold and probes the index of photo hours for each).
_PHOTOS = """
SELECT (
    SELECT coalesce(sum(photos), 0)
    FROM aimetrics_aimetrichourphotocount
    WHERE hour >= %(first)s AND hour < %(last)s AND previous_hour < %(first)s
) + (
    SELECT count(DISTINCT e.photo_id)
    FROM (
        SELECT m.photo_id FROM aimetrics_aimetric AS m
        WHERE m.created_at >= %(since)s AND m.created_at < %(first)s
        UNION ALL
        SELECT m.photo_id FROM aimetrics_aimetric AS m
        WHERE m.created_at >= %(last)s AND m.created_at < %(until)s
    ) AS e
    WHERE e.photo_id IS NOT NULL AND NOT EXISTS (
        SELECT FROM aimetrics_aimetricphotohour AS p
        WHERE p.photo_id = e.photo_id AND p.hour >= %(first)s AND p.hour < %(last)s
    )
) AS photos
"""


@dataclass
class Figures:
    """Rows as the raw-row queries give them (calls, successes, failures, mean, p50, p95, p99,
    tokens_in, tokens_out, cost_usd), for the whole window, per call and per bucket."""

    summary: dict[str, Any]
    by_call: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)


def window_pieces(window: Window) -> tuple[list[Piece], list[Piece]]:
    """(whole UTC hours, the rest) of each bucket of the window, as (bucket start, low, high)."""
    return _split(bucket_bounds(window), HOUR)


def _split(pieces: list[Piece], unit: timedelta) -> tuple[list[Piece], list[Piece]]:
    """Each piece cut into its whole UTC hours or days (one piece) and what is left (0–2)."""
    whole: list[Piece] = []
    rest: list[Piece] = []
    for start, low, high in pieces:
        first, last = _ceil(low, unit), _floor(high, unit)
        if first < last:
            whole.append((start, first, last))
            rest.extend((start, a, b) for a, b in ((low, first), (last, high)) if a < b)
        else:
            rest.append((start, low, high))
    return whole, rest


def _floor(moment: datetime, unit: timedelta) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if unit == DAY else moment


def _ceil(moment: datetime, unit: timedelta) -> datetime:
    floor = _floor(moment, unit)
    return floor if floor == moment else floor + unit


def _params(**pieces: list[Piece]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, rows in pieces.items():
        for i, column in enumerate(("starts", "lows", "highs")):
            params[f"{name}_{column}"] = [piece[i] for piece in rows]
    return params


def _fetch(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _percentiles_sql(percentiles: dict[str, float], groups: dict[str, str]) -> str:
    """percentile_cont(f) interpolates between the elements of rank ⌊f·(n−1)⌋ and ⌈f·(n−1)⌉;
    here each is the middle of its bucket."""
    ranks, values = [], []
    for name, fraction in percentiles.items():
        # float8 arithmetic, as percentile_cont's; the fraction is a float we chose, not input.
        position = f"({float(fraction)!r}::float8 * (n - 1))"
        ranks += [
            f"min(bucket) FILTER (WHERE upto > floor({position})) AS {name}_low",
            f"min(bucket) FILTER (WHERE upto > ceil({position})) AS {name}_high",
            f"max({position} - floor({position}))::float8 AS {name}_weight",
        ]
        low, high = (
            f"aimetric_latency_bucket_ms({name}_low)",
            f"aimetric_latency_bucket_ms({name}_high)",
        )
        values.append(f"{low} + ({high} - {low}) * {name}_weight AS {name}")
    return _PERCENTILES.format(
        **groups, columns=_COLUMNS, ranks=",\n        ".join(ranks), values=", ".join(values)
    )


def figures(
    window: Window, *, percentiles: dict[str, float], series_percentiles: dict[str, float]
) -> Figures:
    """Totals and latency percentiles of the window, per provider/model/operation (in that order)
    and per bucket (in time order, only those with calls), in three queries: the hourly totals;
    the histograms of the whole window, cut into whole UTC days, hours and the rest; the
    histograms per bucket, cut the same way, for `series_percentiles` only (the chart's)."""
    hours, edges = window_pieces(window)
    latency = {}
    for groups, wanted, pieces in (
        (_BY_CALL, percentiles, [(window.since, window.since, window.until)]),
        (_SERIES, series_percentiles, bucket_bounds(window)),
    ):
        whole_hours, rest = _split(pieces, HOUR)
        days, hours_left = _split(whole_hours, DAY)
        params = _params(day=days, hour=hours_left, edge=rest)
        for row in _fetch(_percentiles_sql(wanted, groups), params):
            latency[row["kind"], row["start"], row["provider"], row["model"], row["operation"]] = (
                row
            )
    result = Figures(summary={})
    for row in _fetch(_TOTALS, _params(hour=hours, edge=edges)):
        if row["calls"] == 0 and row["kind"] != SUMMARY:
            continue
        start = row["start"] if row["kind"] == SERIES else None
        key = (row["kind"], start, row["provider"], row["model"], row["operation"])
        quantiles = latency.get(key, {})
        row |= {name: quantiles.get(name) for name in percentiles}  # None: not computed
        row["failures"] = row["calls"] - row["successes"]
        if row["kind"] == SUMMARY:
            result.summary = row
        else:
            (result.by_call if row["kind"] == BY_CALL else result.series).append(row)
    return result


def photos(window: Window) -> int:
    """Distinct photos with a call in the window, exactly."""
    first, last = _ceil(window.since, HOUR), _floor(window.until, HOUR)
    if first >= last:  # no whole hour: the rows of the window are all edge
        first = last = window.until
    params = {"since": window.since, "first": first, "last": last, "until": window.until}
    (row,) = _fetch(_PHOTOS, params)
    return int(row["photos"])


def projects(window: Window, *, top: int) -> list[dict[str, Any]]:
    """Calls, tokens and cost of the `top` projects by cost (calls without a project left out)."""
    hours, edges = window_pieces(window)
    return _fetch(_PROJECTS, _params(hour=hours, edge=edges) | {"top": top})
