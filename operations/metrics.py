"""`/metrics`: Prometheus figures read from Redis and the database at scrape time.

Access: `Authorization: Bearer <METRICS_TOKEN>`, or a client address inside
`METRICS_ALLOWED_NETWORKS`; anything else gets 403. Metric names are documented in README
("Prometheus").

AI call counters are totals over the whole AiMetric table. Hours that ended more than
`SETTLE_AFTER` ago are summed once per hour per process and kept; each scrape adds only the rows
since then, so a scrape stays cheap however large the table grows.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from aimetrics.totals import (
    CallKey,
    CallTotals,
    FailureKey,
    aimetric_call_totals,
    aimetric_failure_totals,
)
from operations.queues import queue_stats
from photos.models import Photo

logger = logging.getLogger(__name__)

LATENCY_BUCKETS_MS = (250, 500, 1000, 2000, 3000, 5000, 8000, 13000, 20000, 30000, 60000)
# A row is counted in the cached, settled hours only once it is this old: far longer than any
# insert takes to commit (AiMetric rows are written in autocommit, right after their call).
SETTLE_AFTER = timedelta(minutes=5)
QUEUE_STATES = ("waiting", "delayed", "active", "dead")


# --- Access ---------------------------------------------------------------------------------


def metrics_allowed(request: HttpRequest) -> bool:
    """The Bearer token matches METRICS_TOKEN, or the client address is in an allowed network.

    The address is REMOTE_ADDR: behind a reverse proxy it is the proxy's, so use the token there.
    """
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in _allowed_networks())


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for entry in settings.METRICS_ALLOWED_NETWORKS:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"METRICS_ALLOWED_NETWORKS: {entry!r} is not an address or a CIDR network"
            ) from None
    return networks


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; 403 without the token from an address outside the allow-list."""
    if not metrics_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MoverzCollector())
    # The text format 0.0.4, or OpenMetrics when the scraper asks for it (as Prometheus does).
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encode(registry), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response


# --- AI call totals: settled hours (cached) + the rows since --------------------------------


@dataclass(frozen=True)
class _Settled:
    until: datetime
    calls: dict[CallKey, CallTotals]
    failures: dict[FailureKey, int]


_settled: _Settled | None = None
_settled_lock = threading.Lock()


def metrics_cache_clear() -> None:
    """Forget the settled totals (tests; after deleting AiMetric rows)."""
    global _settled
    with _settled_lock:
        _settled = None


def _settled_totals(now: datetime) -> _Settled:
    global _settled
    until = (now - SETTLE_AFTER).replace(minute=0, second=0, microsecond=0)
    with _settled_lock:
        if _settled is None or _settled.until != until:
            _settled = _Settled(
                until=until,
                calls=aimetric_call_totals(buckets_ms=LATENCY_BUCKETS_MS, until=until),
                failures=aimetric_failure_totals(until=until),
            )
        return _settled


def ai_totals(
    *, now: datetime | None = None
) -> tuple[dict[CallKey, CallTotals], dict[FailureKey, int]]:
    """All-time totals of AI calls: the cached settled hours plus the rows since."""
    settled = _settled_totals(now or timezone.now())
    recent_calls = aimetric_call_totals(buckets_ms=LATENCY_BUCKETS_MS, since=settled.until)
    recent_failures = aimetric_failure_totals(since=settled.until)
    calls = dict(settled.calls)
    for call, totals in recent_calls.items():
        calls[call] = calls[call] + totals if call in calls else totals
    failures = dict(settled.failures)
    for failure, count in recent_failures.items():
        failures[failure] = failures.get(failure, 0) + count
    return calls, failures


# --- The collector --------------------------------------------------------------------------


class MoverzCollector(Collector):
    """Reads everything at scrape time. A section that fails (Redis down, say) is left out and
    reported by `moverz_metrics_section_up`, so the other figures still arrive."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "moverz_metrics_section_up",
            "1 if the section's figures were read at this scrape, 0 if reading them failed.",
            labels=["section"],
        )
        seconds = GaugeMetricFamily(
            "moverz_metrics_section_duration_seconds",
            "Time spent reading the section's figures at this scrape.",
            labels=["section"],
        )
        sections: list[tuple[str, Callable[[], Iterable[Metric]]]] = [
            ("queues", _queue_metrics),
            ("photos", _photo_metrics),
            ("ai", _ai_metrics),
        ]
        for name, read in sections:
            started = time.perf_counter()
            try:
                metrics = list(read())
            except Exception:
                logger.exception("/metrics: reading the %s figures failed", name)
                metrics = []
                up.add_metric([name], 0)
            else:
                up.add_metric([name], 1)
            seconds.add_metric([name], time.perf_counter() - started)
            yield from metrics
        yield up
        yield seconds


def _queue_metrics() -> Iterator[Metric]:
    messages = GaugeMetricFamily(
        "moverz_queue_messages",
        "Messages in a Dramatiq queue by state: waiting (ready), delayed (retries, coalesced "
        "syncs), active (held by workers), dead (dead-lettered).",
        labels=["queue", "state"],
    )
    finished = GaugeMetricFamily(
        "moverz_queue_finished",
        "Finished work per queue: photo-analyze counts photos DONE (completed) and ERROR "
        "(failed); inventory-sync counts snapshots written and sync runs that raised.",
        labels=["queue", "outcome"],
    )
    for queue in queue_stats():
        for state in QUEUE_STATES:
            messages.add_metric([queue["name"], state], queue[state])  # type: ignore[literal-required]
        finished.add_metric([queue["name"], "completed"], queue["completed"])
        finished.add_metric([queue["name"], "failed"], queue["failed"])
    yield messages
    yield finished


def _photo_metrics() -> Iterator[Metric]:
    counts = dict(
        Photo.objects.order_by()
        .values_list("status")
        .annotate(n=Count("status"))
        .values_list("status", "n")
    )
    photos = GaugeMetricFamily("moverz_photos", "Photos by analysis status.", labels=["status"])
    for status in Photo.Status:
        photos.add_metric([status.value], counts.get(status.value, 0))
    yield photos


def _ai_metrics() -> Iterator[Metric]:
    calls, failures = ai_totals()
    labels = ["provider", "model", "operation", "outcome"]
    calls_total = CounterMetricFamily(
        "moverz_ai_calls", "AI provider calls (one per request).", labels=labels
    )
    latency = HistogramMetricFamily(
        "moverz_ai_call_latency_seconds", "Latency of AI provider calls.", labels=labels
    )
    tokens = CounterMetricFamily(
        "moverz_ai_tokens",
        "Tokens of AI provider calls, by direction (in: prompt and image, out: answer).",
        labels=["provider", "model", "operation", "direction"],
    )
    cost = CounterMetricFamily(
        "moverz_ai_cost_usd", "Cost of AI provider calls in US dollars.", labels=labels[:3]
    )
    failed = CounterMetricFamily(
        "moverz_ai_call_failures",
        "Failed AI provider calls by error type (TIMEOUT, RATE_LIMIT, PROVIDER_DOWN, NETWORK, "
        "BAD_INPUT, UNKNOWN).",
        labels=["provider", "model", "operation", "error_type"],
    )
    costs: dict[tuple[str, str, str], float] = {}
    token_counts: dict[tuple[str, str, str], list[int]] = {}
    for (provider, model, operation, success), totals in sorted(calls.items()):
        names = [provider, model, operation, "success" if success else "failure"]
        calls_total.add_metric(names, totals.calls)
        buckets = [
            (floatToGoString(bound / 1000), count)
            for bound, count in zip(LATENCY_BUCKETS_MS, totals.buckets, strict=True)
        ]
        latency.add_metric(
            names, [*buckets, ("+Inf", totals.calls)], sum_value=totals.latency_ms_sum / 1000
        )
        call = (provider, model, operation)
        costs[call] = costs.get(call, 0.0) + float(totals.cost_usd)
        counts = token_counts.setdefault(call, [0, 0])
        counts[0] += totals.tokens_in
        counts[1] += totals.tokens_out
    for call, (tokens_in, tokens_out) in token_counts.items():
        tokens.add_metric([*call, "in"], tokens_in)
        tokens.add_metric([*call, "out"], tokens_out)
        cost.add_metric(list(call), costs[call])
    for (provider, model, operation, error_type), count in sorted(failures.items()):
        failed.add_metric([provider, model, operation, error_type], count)
    yield from (calls_total, failed, latency, tokens, cost)
