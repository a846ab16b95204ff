"""The hourly rollups of AiMetric and the job that keeps them: sums of rows, up to an id.

**What is rolled up.** The tables of `aimetrics.models` (AiMetricHour, AiMetricHourLatency and
AiMetricDayLatency, AiMetricHourProject, AiMetricPhotoHour) hold exactly the AiMetric rows with
id <= `AiMetricRollup.rolled_up_id` (the watermark), summed per UTC hour (or day). Every reader
(`aimetrics.figures`) adds the rows above the watermark, read from AiMetric itself with the same
aggregates, so a figure is the same whether the job has run or not; the job only makes it cheaper.
Rows arrive in any order of `created_at` (a bulk insert of last month's rows gets new ids): a row
is rolled up by its id, into whatever hour it belongs to.

**The job**, `aimetric_rollup`: in one transaction, lock the watermark row, sum the next rows
(the ids of at most `batch` of them) with the readers' aggregates, add the sums to the rollups'
rows (read, add, upsert) and move the watermark. The lock makes the job single-file: a second
process skips the locked row and returns (`skip_locked`), so rows are never added twice, and a
batch's sums and its watermark commit together or not at all. Run by the relay loop
(`operations.relay`, every pass), `manage.py aimetrics_rollup`, or a test.

**Ids that are not committed yet.** An id is handed out when its INSERT runs, not when it
commits, so a committed id 101 does not prove that id 100 is there to be read. The job therefore
notes the highest id it sees (`seen_id`, `seen_at`) and rolls up to it only `settle` later, by
which time every transaction that took a lower id has ended: AiMetric rows are written in
autocommit right after their provider call. `settle=0` is for callers that know no writer is
running (tests, the bench, a quiet `manage.py aimetrics_rollup --settle 0`).

**Readers** read the watermark, their figures, then the watermark again, and read again in the
rare case it moved in between (`aimetrics.figures.read_consistent`): under READ COMMITTED each
statement has its own snapshot, and a watermark that moved mid-read would count a batch twice.
The watermark only grows: `aimetric_rollup_rebuild` (after rows were changed or deleted) rebuilds
the rollups up to the same watermark in one transaction.

**Latency** is kept as a histogram (`latency_bucket`): each latency rounded up to an edge, 1 ms
apart up to 100 ms, then 1/50 of the start of its range (ranges split at 1, 2.5 and 5 × 10^d),
so the middle of a bucket is within 1 % of every latency in it, and every bound of two
significant digits (250 ms, 1.3 s, 60 s) is an edge: counts "at most X ms" are exact there.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import models, transaction
from django.db.models import BigIntegerField, Case, Count, Max, Min, QuerySet, Sum, Value, When
from django.db.models.functions import Cast, Coalesce, TruncDay, TruncHour
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

SETTLE_AFTER = timedelta(minutes=5)
BATCH = 20_000  # rows per run: a relay pass stays short (seconds) while the job catches up
CHUNK = 1000  # keys per IN (…) list
USD_PLACES = Decimal("0.000001")  # AiMetric.cost_usd has 6 decimal places
STATE = 1  # the primary key of the one AiMetricRollup row
ROLLUPS: list[type[models.Model]] = [
    AiMetricHour,
    AiMetricHourLatency,
    AiMetricDayLatency,
    AiMetricHourProject,
    AiMetricPhotoHour,
]

# --- Latency buckets ------------------------------------------------------------------------------

# (largest latency of a range, width of its buckets), in ms. Each width is at most 1/50 of its
# range's start (a bucket's middle is within 1 % of its latencies) and divides every multiple of
# 10^(d−1) in the decade [10^d, 10^(d+1)) (bounds of two significant digits are edges).
LATENCY_RANGES: list[tuple[int, int]] = [(100, 1)] + [
    range_
    for d in range(2, 10)
    for range_ in ((25 * 10 ** (d - 1), 2 * 10 ** (d - 2)), (5 * 10**d, 5 * 10 ** (d - 2)))
    + ((10 ** (d + 1), 10 ** (d - 1)),)
]


def latency_bucket(latency_ms: int) -> int:
    """The histogram edge of a latency: the smallest edge at or above it."""
    for top, width in LATENCY_RANGES:
        if latency_ms <= top:
            return -(-latency_ms // width) * width
    return latency_ms


def latency_bucket_expression(field: str = "latency_ms") -> Case:
    """`latency_bucket` in SQL (integer division on PostgreSQL and SQLite alike)."""
    ms = Cast(field, BigIntegerField())  # bigint: rounding up must not overflow an integer
    return Case(
        *(
            When(
                **{f"{field}__lte": top},
                then=ms if width == 1 else (ms + (width - 1)) / width * width,
            )
            for top, width in LATENCY_RANGES
        ),
        default=ms,
        output_field=BigIntegerField(),
    )


def latency_bucket_value(edge: int) -> float:
    """What a bucket's latencies are read as: the middle of the whole milliseconds it holds."""
    width = next((w for top, w in LATENCY_RANGES if edge <= top), 1)
    return edge - (width - 1) / 2


def latency_percentile(histogram: Mapping[int, int], fraction: float) -> float | None:
    """percentile_cont over a histogram {edge: calls}: the interpolation between the elements of
    ranks ⌊f·(n−1)⌋ and ⌈f·(n−1)⌉, each read as its bucket's value, so within 1 % of the exact
    percentile (exact up to 100 ms)."""
    calls = sum(histogram.values())
    if not calls:
        return None
    position = fraction * (calls - 1)
    low_rank, high_rank = math.floor(position), math.ceil(position)
    low = high = None
    upto = 0
    for edge in sorted(histogram):
        upto += histogram[edge]
        if low is None and upto > low_rank:
            low = latency_bucket_value(edge)
        if upto > high_rank:
            high = latency_bucket_value(edge)
            break
    assert low is not None and high is not None
    return low + (high - low) * (position - low_rank)


# --- The aggregates: the job's, and the readers' over the rows not rolled up ----------------------

CALL_KEYS = ["provider", "model", "operation", "success"]
SUMS = ["calls", "latency_ms_sum", "tokens_in", "tokens_out", "cost_usd"]
PROJECT_SUMS = ["calls", "tokens_in", "tokens_out", "cost_usd"]


def raw_sums(*, latency: bool = True) -> dict[str, Any]:
    """The sums of AiMetric rows, named as the rollups' columns."""
    sums: dict[str, Any] = {
        "calls": Count("id"),
        "latency_ms_sum": Sum("latency_ms", default=0),
        "tokens_in": Sum("tokens_in", default=0),
        "tokens_out": Sum("tokens_out", default=0),
        "cost_usd": Sum("cost_usd", default=Decimal("0")),
    }
    if not latency:
        del sums["latency_ms_sum"]
    return sums


def rolled_sums(*, latency: bool = True) -> dict[str, Any]:
    """The same sums over rollup rows."""
    return {name: Sum(name) for name in (SUMS if latency else PROJECT_SUMS)}


def raw_error_type() -> Coalesce:
    return Coalesce("error_type", Value(""))


def usd(value: Decimal | float) -> Decimal:
    # Exact on PostgreSQL already (numeric); on SQLite, sums of decimals can come back as floats.
    return Decimal(value).quantize(USD_PLACES, ROUND_HALF_UP)


# --- The job --------------------------------------------------------------------------------------


def aimetric_rollup(
    *, now: datetime | None = None, settle: timedelta = SETTLE_AFTER, batch: int = BATCH
) -> int:
    """Add the next AiMetric rows (the ids of at most `batch` rows) to the hourly rollups.

    Returns the number of rows added: 0 when there is nothing to do yet, or when another
    process holds the lock. Cheap when there is nothing to do (a few index lookups)."""
    now = now or timezone.now()
    with transaction.atomic():
        state = _lock()
        if state is None:
            return 0
        latest = AiMetric.objects.aggregate(latest=Max("id"))["latest"] or 0
        if settle <= timedelta(0):
            safe = latest
        elif state.seen_at is not None and state.seen_at <= now - settle:
            safe = state.seen_id
        else:
            safe = state.rolled_up_id
        start, added = state.rolled_up_id, 0
        if safe > start:
            state.rolled_up_id = _batch_end(start, safe, batch)
            added = rollup_add(AiMetric.objects.filter(id__gt=start, id__lte=state.rolled_up_id))
        changed = state.rolled_up_id > start
        if latest > state.seen_id and state.seen_id <= state.rolled_up_id:
            state.seen_id, state.seen_at = latest, now  # the previous sighting is used up
            changed = True
        if changed:
            state.save()
    return added


def aimetric_rollup_rebuild() -> int:
    """Recompute the rollups from the rows up to the watermark (after rows were changed or
    deleted), in one transaction: readers see the old rollups until it commits. Waits for a
    running job. Returns the watermark."""
    with transaction.atomic():
        state = _lock(wait=True)
        assert state is not None
        for model in ROLLUPS:
            model._default_manager.all().delete()
        start = 0
        while start < state.rolled_up_id:
            end = _batch_end(start, state.rolled_up_id, BATCH)
            rollup_add(AiMetric.objects.filter(id__gt=start, id__lte=end))
            start = end
        return state.rolled_up_id


def _batch_end(start: int, safe: int, batch: int) -> int:
    """The last id of a batch after `start`: `batch` ids from the next row on (so that a gap in
    the ids, left by rolled-back inserts, costs nothing), at most `safe`."""
    first = AiMetric.objects.filter(id__gt=start, id__lte=safe).aggregate(first=Min("id"))["first"]
    return safe if first is None else min(safe, first - 1 + batch)


def _lock(*, wait: bool = False) -> AiMetricRollup | None:
    """The watermark row, locked until the commit; None when another process holds it. The
    first run ever creates the row (a run beside it waits for that one to commit)."""
    rows = AiMetricRollup.objects.select_for_update(skip_locked=not wait).filter(pk=STATE)
    state = rows.first()
    if state is None and not AiMetricRollup.objects.filter(pk=STATE).exists():
        AiMetricRollup.objects.bulk_create([AiMetricRollup(pk=STATE)], ignore_conflicts=True)
        state = rows.first()
    return state


def rollup_add(rows: QuerySet[AiMetric]) -> int:
    """Add `rows` to every rollup (the caller holds the watermark's lock); how many there were."""
    hour = TruncHour("created_at", tzinfo=UTC)
    calls = rows.values(*CALL_KEYS, hour=hour, error=raw_error_type()).annotate(**raw_sums())
    hours = [g | {"error_type": g.pop("error")} for g in calls]
    _add(AiMetricHour, hours)
    edge = latency_bucket_expression()
    latency = rows.values(*CALL_KEYS, hour=hour, latency_le_ms=edge)
    _add(AiMetricHourLatency, latency.annotate(calls=Count("id")))
    days = rows.values(*CALL_KEYS, day=TruncDay("created_at", tzinfo=UTC), latency_le_ms=edge)
    _add(AiMetricDayLatency, days.annotate(calls=Count("id")), at="day")
    projects = rows.filter(project_id__isnull=False).values("project_id", hour=hour)
    _add(AiMetricHourProject, projects.annotate(**raw_sums(latency=False)))
    photo_hours = rows.filter(photo_id__isnull=False).values_list("photo_id", hour).distinct()
    _link_photo_hours(photo_hours)
    return sum(group["calls"] for group in hours)


def _chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _add(
    model: type[models.Model], groups: Iterable[Mapping[str, Any]], *, at: str = "hour"
) -> None:
    """Add sums to a rollup's rows: those of the same hours (or days) are read, added to,
    upserted."""
    deltas = [dict(group) for group in groups]
    if not deltas:
        return
    keys = [name for name in deltas[0] if name not in SUMS]
    sums = [name for name in deltas[0] if name in SUMS]
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for chunk in _chunks({delta[at] for delta in deltas}):
        rows = model._default_manager.filter(**{f"{at}__in": chunk})
        for row in rows.values(*keys, *sums):
            totals[tuple(row[k] for k in keys)] = row
    for delta in deltas:
        key = tuple(delta[k] for k in keys)
        row = totals.setdefault(key, {**dict.fromkeys(sums, 0), **{k: delta[k] for k in keys}})
        for name in sums:
            row[name] += delta[name]
    objects = []
    for row in totals.values():
        if "cost_usd" in row:
            row["cost_usd"] = usd(row["cost_usd"])
        objects.append(model(**row))
    model._default_manager.bulk_create(
        objects, update_conflicts=True, unique_fields=keys, update_fields=sums, batch_size=CHUNK
    )


def _link_photo_hours(pairs: Iterable[tuple[uuid.UUID, datetime]]) -> None:
    """Add (photo, hour) pairs to AiMetricPhotoHour and relink each photo's hours in order."""
    new: dict[uuid.UUID, set[datetime]] = defaultdict(set)
    for photo_id, hour in pairs:
        new[photo_id].add(hour)
    changed: list[AiMetricPhotoHour] = []
    for chunk in _chunks(new):
        known: dict[uuid.UUID, dict[datetime, datetime | None]] = defaultdict(dict)
        for row in AiMetricPhotoHour.objects.filter(photo_id__in=chunk).values_list(
            "photo_id", "hour", "previous_hour"
        ):
            known[row[0]][row[1]] = row[2]
        for photo_id in chunk:
            hours = known[photo_id]
            previous = None
            for hour in sorted(hours.keys() | new[photo_id]):
                if hour not in hours or hours[hour] != previous:
                    changed.append(
                        AiMetricPhotoHour(photo_id=photo_id, hour=hour, previous_hour=previous)
                    )
                previous = hour
    AiMetricPhotoHour.objects.bulk_create(
        changed,
        update_conflicts=True,
        unique_fields=["photo_id", "hour"],
        update_fields=["previous_hour"],
        batch_size=CHUNK,
    )
