"""Running totals of AI calls (counts, latency buckets, tokens, cost), for Prometheus counters.

One GROUP BY per call; `operations.metrics` adds the totals of settled hours (cached) to those
of the last hour so that a scrape reads only recent rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum

from aimetrics.models import AiMetric

CallKey = tuple[str, str, str, bool]  # provider, model, operation, success
FailureKey = tuple[str, str, str, str]  # provider, model, operation, error type ("" when none)
CALL_FIELDS = ["provider", "model", "operation"]


@dataclass(frozen=True, kw_only=True)
class CallTotals:
    """The calls of one provider, model, operation and outcome."""

    calls: int
    latency_ms_sum: int
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal
    # Calls whose latency was at most each bound of `buckets_ms` (cumulative, as in Prometheus).
    buckets: tuple[int, ...]

    def __add__(self, other: CallTotals) -> CallTotals:
        return replace(
            self,
            calls=self.calls + other.calls,
            latency_ms_sum=self.latency_ms_sum + other.latency_ms_sum,
            tokens_in=self.tokens_in + other.tokens_in,
            tokens_out=self.tokens_out + other.tokens_out,
            cost_usd=self.cost_usd + other.cost_usd,
            buckets=tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True)),
        )


def _rows(since: datetime | None, until: datetime | None) -> QuerySet[AiMetric]:
    rows = AiMetric.objects.order_by()
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    return rows


def aimetric_call_totals(
    *, buckets_ms: Sequence[int], since: datetime | None = None, until: datetime | None = None
) -> dict[CallKey, CallTotals]:
    """Totals per provider, model, operation and success, for since ≤ created_at < until."""
    # COUNT(created_at) counts rows and keeps to the covering indexes (COUNT(*) takes no FILTER).
    bounds = {
        f"le_{i}": Count("created_at", filter=Q(latency_ms__lte=b))
        for i, b in enumerate(buckets_ms)
    }
    groups = (
        _rows(since, until)
        .values(*CALL_FIELDS, "success")
        .annotate(
            calls=Count("created_at"),
            latency_ms_sum=Sum("latency_ms", default=0),
            tokens_in=Sum("tokens_in", default=0),
            tokens_out=Sum("tokens_out", default=0),
            cost_usd=Sum("cost_usd", default=Decimal("0")),
            **bounds,
        )
    )
    return {
        (g["provider"], g["model"], g["operation"], g["success"]): CallTotals(
            calls=g["calls"],
            latency_ms_sum=g["latency_ms_sum"],
            tokens_in=g["tokens_in"],
            tokens_out=g["tokens_out"],
            cost_usd=g["cost_usd"],
            buckets=tuple(g[name] for name in bounds),
        )
        for g in groups
    }


def aimetric_failure_totals(
    *, since: datetime | None = None, until: datetime | None = None
) -> dict[FailureKey, int]:
    """Failed calls per provider, model, operation and error type."""
    groups = (
        _rows(since, until)
        .filter(success=False)
        .values(*CALL_FIELDS, "error_type")
        .annotate(calls=Count("created_at"))
    )
    return {
        (g["provider"], g["model"], g["operation"], g["error_type"] or ""): g["calls"]
        for g in groups
    }
