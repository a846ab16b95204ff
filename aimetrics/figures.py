"""The AI figures of a stretch of time: the rollups for its whole UTC hours, AiMetric for the rest.

The one computation behind the dashboard (`aimetrics.dashboard`), `manage.py ai_metrics_report`
and the Prometheus totals (`aimetric_totals`, read by `operations.metrics`). Each figure adds two
aggregates, grouped alike (a UNION ALL, mostly one statement): the rollup rows of the whole UTC
hours (those summed by `aimetrics.rollup`, up to its watermark; whole UTC days of latency from
the daily histograms), and the AiMetric rows of the rest, read through an index: the partial
hours at the edges (by created_at) and, inside the whole hours, the rows above the watermark (by
id). Counts, sums, tokens and costs are exact; latency percentiles come from
the histograms, within 1 % (`aimetrics.rollup.latency_percentile`).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta, tzinfo
from datetime import timezone as fixed_offset
from decimal import Decimal
from typing import Any, Literal

from django.db import transaction
from django.db.models import Count, Exists, F, Func, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from aimetrics.models import (
    AiMetric,
    AiMetricDayLatency,
    AiMetricHour,
    AiMetricHourLatency,
    AiMetricHourProject,
    AiMetricPhotoHour,
    AiMetricRollup,
)
from aimetrics.rollup import (
    CALL_KEYS,
    STATE,
    latency_bucket_expression,
    raw_error_type,
    raw_sums,
    rolled_sums,
    usd,
)
from aimetrics.windows import Window

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
Span = tuple[datetime | None, datetime | None]  # low ≤ created_at < high; None: unbounded


# --- One position of the watermark ----------------------------------------------------------------


def rolled_up_id(*, lock: bool = False) -> int:
    rows = AiMetricRollup.objects.filter(pk=STATE)
    if lock:
        rows = rows.select_for_update()
    return rows.values_list("rolled_up_id", flat=True).first() or 0


def read_consistent[T](read: Callable[[int], T], *, attempts: int = 3) -> T:
    """`read(watermark)`, with the watermark unchanged from before the read to after it.

    Each statement has its own snapshot: had the job moved the watermark in between, its last
    batch would be counted both in the rollups and above the old watermark. So read again; after
    `attempts` misses, read while holding the watermark's lock (the job waits)."""
    for _ in range(attempts):
        before = rolled_up_id()
        result = read(before)
        if rolled_up_id() == before:
            return result
    with transaction.atomic():
        return read(rolled_up_id(lock=True))


# --- Which rows come from where -------------------------------------------------------------------


def _floor(moment: datetime, unit: timedelta = HOUR) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if unit == DAY else moment


def _ceil(moment: datetime, unit: timedelta = HOUR) -> datetime:
    floor = _floor(moment, unit)
    return floor if floor == moment else floor + unit


def _whole(
    low: datetime | None, high: datetime | None, unit: timedelta
) -> tuple[Span | None, list[Span]]:
    """The whole UTC hours or days of [low, high) as one span (None: there are none), and the
    rest (0–2 spans)."""
    first = None if low is None else _ceil(low, unit)
    last = None if high is None else _floor(high, unit)
    if first is not None and last is not None and first >= last:
        return None, [(low, high)]
    return (first, last), [(a, b) for a, b in ((low, first), (last, high)) if a != b]


def _range(column: str, low: datetime | None, high: datetime | None) -> Q:
    if low is None and high is None:
        return Q(**{f"{column}__isnull": False})  # all time
    q = Q()
    if low is not None:
        q &= Q(**{f"{column}__gte": low})
    if high is not None:
        q &= Q(**{f"{column}__lt": high})
    return q


def _any(column: str, spans: Iterable[Span]) -> Q:
    q = Q(**{f"{column}__in": []})  # nothing
    for low, high in spans:
        q |= _range(column, low, high)
    return q


@dataclass(frozen=True)
class Cut:
    """Spans of time cut into whole UTC hours (`hours`: the rollups) and the rest (`edges`)."""

    hours: list[Span]
    edges: list[Span]
    watermark: int

    @classmethod
    def of(cls, spans: Iterable[Span], *, watermark: int) -> Cut:
        hours: list[Span] = []
        edges: list[Span] = []
        for low, high in spans:
            whole, rest = _whole(low, high, HOUR)
            edges += rest
            if whole is None:
                continue
            if hours and whole[0] is not None and hours[-1][1] == whole[0]:
                whole = (hours.pop()[0], whole[1])  # contiguous with the previous span's hours
            hours.append(whole)
        return cls(hours=hours, edges=edges, watermark=watermark)

    def days(self) -> tuple[list[Span], list[Span]]:
        """The whole hours as whole UTC days, and the hours left."""
        days: list[Span] = []
        hours: list[Span] = []
        for low, high in self.hours:
            whole, rest = _whole(low, high, DAY)
            days += [] if whole is None else [whole]
            hours += rest
        return days, hours

    def rolled(self, column: str = "hour", spans: list[Span] | None = None) -> Q:
        """The rollup rows to read (of the whole hours, or of `spans` of them)."""
        return _any(column, self.hours if spans is None else spans)

    def raw(self) -> Q:
        """The AiMetric rows to read: all those of the edges, those above the watermark in the
        whole hours."""
        return _any("created_at", self.edges) | (
            Q(id__gt=self.watermark) & _any("created_at", self.hours)
        )


def _merged(rows: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of both halves of a UNION ALL, added up per key."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in map(dict, rows):
        key = tuple(row[k] for k in keys)
        if key in groups:
            group = groups[key]
            for name, value in row.items():
                if name not in keys:
                    group[name] += value
        else:
            groups[key] = row
    return list(groups.values())


def call_sums(cut: Cut, *, series: Series | None = None) -> list[dict[str, Any]]:
    """Calls, latency sum, tokens and cost per provider, model, operation, success, error type
    (`error`: "" when none) and, given a `series`, the start of the bucket (`start`)."""
    rolled = AiMetricHour.objects.filter(cut.rolled()).order_by()
    raw = AiMetric.objects.filter(cut.raw()).order_by()
    keys = [*CALL_KEYS, "error"]
    if series is not None:
        # Both halves alike, so that the UNION's rows convert alike (by the first half's types):
        # a handful of rows per bucket, unlike the histograms.
        rolled = rolled.annotate(start=series.raw("hour"))
        raw = raw.annotate(start=series.raw())
        keys.append("start")
    rolled = rolled.annotate(error=F("error_type")).values(*keys).annotate(**rolled_sums())
    raw = raw.annotate(error=raw_error_type()).values(*keys).annotate(**raw_sums())
    return _merged(rolled.union(raw, all=True), keys)


def latency_histograms(
    cut: Cut, *, by: Sequence[str] = (), series: Series | None = None
) -> dict[tuple[Any, ...], dict[int, int]]:
    """{(the `by` columns…, the bucket's start given a `series`): {histogram edge: calls}}.

    Whole UTC days come from the daily histograms, unless the series' buckets are not UTC days.
    Per bucket of a series, the rollups' rows come with their own hour or day (no conversion
    per row: a week's hourly series has a row per hour and edge), mapped to the bucket here."""
    days, hours = cut.days() if series is None or series.utc_days else ([], cut.hours)
    start = [] if series is None else ["start"]
    rolled = (
        model.objects.filter(cut.rolled(column, spans))
        .order_by()
        .values(*by, **({"start": F(column)} if series else {}), le=F("latency_le_ms"))
        .annotate(calls=Sum("calls"))
        for model, column, spans in (
            (AiMetricDayLatency, "day", days),
            (AiMetricHourLatency, "hour", hours),
        )
    )
    raw = AiMetric.objects.filter(cut.raw()).order_by()
    if series is not None:
        raw = raw.annotate(start=series.raw())
    raw_groups = raw.values(*by, *start, le=latency_bucket_expression()).annotate(calls=Count("id"))
    day_rows, hour_rows = rolled
    if series is None:  # one statement
        groups: Iterable[dict[str, Any]] = day_rows.union(hour_rows, raw_groups, all=True)
    else:  # the halves convert their `start` apart
        buckets: dict[datetime, datetime] = {}  # a few hundred hours or days, many rows each

        def bucket(moment: datetime) -> datetime:
            if moment not in buckets:
                buckets[moment] = series.bucket_of(moment)
            return buckets[moment]

        rolled_rows = day_rows.union(hour_rows, all=True)
        rolled_groups = (g | {"start": bucket(g["start"])} for g in rolled_rows)
        groups = itertools.chain(rolled_groups, raw_groups)
    keys = [*by, *start]
    histograms: dict[tuple[Any, ...], dict[int, int]] = defaultdict(dict)
    for row in groups:
        histogram = histograms[tuple(row[k] for k in keys)]
        histogram[row["le"]] = histogram.get(row["le"], 0) + row["calls"]
    return histograms


def project_sums(cut: Cut) -> list[dict[str, Any]]:
    """Calls, tokens and cost per project (calls without a project left out)."""
    rolled = (
        AiMetricHourProject.objects.filter(cut.rolled())
        .values("project_id")
        .annotate(**rolled_sums(latency=False))
        .order_by()
    )
    raw = (
        AiMetric.objects.filter(cut.raw(), project_id__isnull=False)
        .values("project_id")
        .annotate(**raw_sums(latency=False))
        .order_by()
    )
    return _merged(rolled.union(raw, all=True), ["project_id"])


def photo_count(window: Window, *, watermark: int) -> int:
    """Distinct photos with a call in the window, exactly: those of its whole hours in the
    rollups (each counted at its first hour there, see AiMetricPhotoHour), plus those of the
    other rows that have no rolled-up call in these hours."""
    cut = Cut.of([(window.since, window.until)], watermark=watermark)
    first, last = cut.hours[0] if cut.hours else (window.until, window.until)
    rolled: QuerySet[Any] = AiMetricPhotoHour.objects.filter(hour__gte=first, hour__lt=last)
    rolled = rolled.filter(Q(previous_hour__lt=first) | Q(previous_hour__isnull=True))
    in_rollups = AiMetricPhotoHour.objects.filter(
        photo_id=OuterRef("photo_id"), hour__gte=first, hour__lt=last
    )
    raw = (
        AiMetric.objects.filter(cut.raw(), photo_id__isnull=False)
        .filter(~Exists(in_rollups))
        .values("photo_id")
        .distinct()
        .order_by()
    )
    return rolled.values("photo_id").order_by().union(raw, all=True).count()


# --- Buckets of a series --------------------------------------------------------------------------


def bucket_bounds(window: Window) -> list[tuple[datetime, datetime, datetime]]:
    """(start, first instant, end) of each hour or day of the window, in the current time zone;
    the first and last are cut to the window. Hours step in UTC (exact across daylight-saving
    changes) from the window's first local hour."""
    local = timezone.localtime(window.since)
    if window.bucket == "hour":
        start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    else:
        start = timezone.make_aware(datetime.combine(local.date(), time.min))
    bounds = []
    while start < window.until:
        if window.bucket == "hour":
            end = start + HOUR
        else:
            next_day = timezone.localtime(start).date() + timedelta(days=1)
            end = timezone.make_aware(datetime.combine(next_day, time.min))
        bounds.append((start, max(start, window.since), min(end, window.until)))
        start = end
    return bounds


@dataclass(frozen=True)
class Series:
    """The buckets of a window's series as `bucket_bounds` cuts them: local days, or hours at the
    window's minutes past the UTC hour (a fixed offset: no daylight-saving ambiguity)."""

    bucket: Literal["hour", "day"]
    zone: tzinfo
    utc_days: bool  # daily buckets that are UTC days (the zone is UTC all along the window)

    @classmethod
    def of(cls, window: Window) -> Series:
        if window.bucket == "day":
            starts = [start.astimezone(UTC) for start, _, _ in bucket_bounds(window)]
            utc_days = all(start == _floor(start, DAY) for start in starts)
            return cls("day", timezone.get_current_timezone(), utc_days)
        offset = timezone.localtime(window.since).utcoffset() or timedelta(0)
        minutes = int(offset.total_seconds() // 60) % 60
        return cls("hour", UTC if not minutes else fixed_offset(timedelta(minutes=minutes)), False)

    def raw(self, column: str = "created_at") -> Func:
        """The start of a row's bucket, in SQL."""
        trunc = TruncHour if self.bucket == "hour" else TruncDay
        return trunc(column, tzinfo=self.zone)

    def bucket_of(self, moment: datetime) -> datetime:
        """The start of the bucket of a whole UTC hour or day of the rollups (the cut keeps
        those that straddle two buckets out of the rollups' part)."""
        if self.bucket == "hour":
            return moment
        day = timezone.localtime(moment, self.zone).date()
        return timezone.make_aware(datetime.combine(day, time.min), self.zone)


# --- Totals for Prometheus ------------------------------------------------------------------------

CallKey = tuple[str, str, str, bool, str]  # provider, model, operation, success, error type
LatencyKey = tuple[str, str, str, bool]  # provider, model, operation, success


@dataclass(frozen=True, kw_only=True)
class CallTotals:
    calls: int = 0
    latency_ms_sum: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal("0")

    def __add__(self, other: CallTotals) -> CallTotals:
        return replace(
            self,
            calls=self.calls + other.calls,
            latency_ms_sum=self.latency_ms_sum + other.latency_ms_sum,
            tokens_in=self.tokens_in + other.tokens_in,
            tokens_out=self.tokens_out + other.tokens_out,
            cost_usd=self.cost_usd + other.cost_usd,
        )


@dataclass(frozen=True, kw_only=True)
class AiTotals:
    """All calls of a stretch of time: sums per call key, a latency histogram per outcome."""

    calls: dict[CallKey, CallTotals] = field(default_factory=dict)
    latency: dict[LatencyKey, dict[int, int]] = field(default_factory=dict)

    def __add__(self, other: AiTotals) -> AiTotals:
        calls = dict(self.calls)
        for key, totals in other.calls.items():
            calls[key] = calls[key] + totals if key in calls else totals
        latency = {outcome: dict(histogram) for outcome, histogram in self.latency.items()}
        for outcome, histogram in other.latency.items():
            mine = latency.setdefault(outcome, {})
            for edge, count in histogram.items():
                mine[edge] = mine.get(edge, 0) + count
        return AiTotals(calls=calls, latency=latency)


def aimetric_totals(*, since: datetime | None = None, until: datetime | None = None) -> AiTotals:
    """The calls with since ≤ created_at < until (None: unbounded), in four queries."""

    def read(watermark: int) -> AiTotals:
        cut = Cut.of([(since, until)], watermark=watermark)
        calls = {
            (g["provider"], g["model"], g["operation"], g["success"], g["error"]): CallTotals(
                calls=g["calls"],
                latency_ms_sum=g["latency_ms_sum"],
                tokens_in=g["tokens_in"],
                tokens_out=g["tokens_out"],
                cost_usd=usd(g["cost_usd"]),
            )
            for g in call_sums(cut)
        }
        latency = latency_histograms(cut, by=CALL_KEYS)
        return AiTotals(calls=calls, latency=dict(latency))

    return read_consistent(read)
