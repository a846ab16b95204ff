"""`/metrics`: Prometheus figures read from Redis and the database at scrape time.

Access: `Authorization: Bearer <METRICS_TOKEN>`, or a client address inside
`METRICS_ALLOWED_NETWORKS`; anything else gets 403. Metric names are documented in README
("Prometheus").

AI call counters are totals over the whole AiMetric table, from `aimetrics.figures.aimetric_totals`
(the hourly rollups plus the rows not rolled up yet: the dashboard's computation). Hours that
ended more than `SETTLE_AFTER` ago are summed once per hour per process and kept; each scrape adds
only the figures since then, so a scrape stays cheap however long the history grows.
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

from ai_engine.registry import breaker_from_settings, quota_from_settings
from aimetrics.figures import AiTotals, aimetric_totals
from infra.broker import QUEUES, broker_redis, oldest_waiting_ms
from operations.queues import queue_stats
from photos.models import Photo
from webhooks.figures import webhook_delivery_figures

logger = logging.getLogger(__name__)

# Each bound is an edge of the rollups' latency histogram (two significant digits), so the count
# of calls at or under it is exact; tests/test_metrics.py checks that.
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
    totals: AiTotals


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
            _settled = _Settled(until=until, totals=aimetric_totals(until=until))
        return _settled


def ai_totals(*, now: datetime | None = None) -> AiTotals:
    """All-time totals of AI calls: the cached settled hours plus the figures since."""
    settled = _settled_totals(now or timezone.now())
    return settled.totals + aimetric_totals(since=settled.until)


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
            ("webhooks", _webhook_metrics),
            *ALERTING_SECTIONS,
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
    totals = ai_totals()
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
    outcomes: dict[tuple[str, str, str, bool], list[int]] = {}  # calls, latency sum
    costs: dict[tuple[str, str, str], float] = {}
    token_counts: dict[tuple[str, str, str], list[int]] = {}
    for (provider, model, operation, success, error_type), sums in sorted(totals.calls.items()):
        call = (provider, model, operation)
        outcome = outcomes.setdefault((*call, success), [0, 0])
        outcome[0] += sums.calls
        outcome[1] += sums.latency_ms_sum
        costs[call] = costs.get(call, 0.0) + float(sums.cost_usd)
        counts = token_counts.setdefault(call, [0, 0])
        counts[0] += sums.tokens_in
        counts[1] += sums.tokens_out
        if not success:
            failed.add_metric([*call, error_type], sums.calls)
    for (provider, model, operation, success), (calls, latency_ms_sum) in outcomes.items():
        names = [provider, model, operation, "success" if success else "failure"]
        calls_total.add_metric(names, calls)
        histogram = totals.latency.get((provider, model, operation, success), {})
        buckets = [
            (
                floatToGoString(bound / 1000),
                sum(count for edge, count in histogram.items() if edge <= bound),
            )
            for bound in LATENCY_BUCKETS_MS
        ]
        latency.add_metric(names, [*buckets, ("+Inf", calls)], sum_value=latency_ms_sum / 1000)
    for call, (tokens_in, tokens_out) in token_counts.items():
        tokens.add_metric([*call, "in"], tokens_in)
        tokens.add_metric([*call, "out"], tokens_out)
        cost.add_metric(list(call), costs[call])
    yield from (calls_total, failed, latency, tokens, cost)


def _webhook_metrics() -> Iterator[Metric]:
    figures = webhook_delivery_figures()
    deliveries = GaugeMetricFamily(
        "moverz_webhook_deliveries",
        "Webhook deliveries by status: pending (owed to enabled endpoints), paused (owed to "
        "disabled ones), delivered, failed (given up).",
        labels=["status"],
    )
    for status in ("pending", "paused", "delivered", "failed"):
        deliveries.add_metric([status], figures[status])
    yield deliveries
    yield GaugeMetricFamily(
        "moverz_webhook_oldest_pending_age_seconds",
        "Age of the oldest webhook delivery owed to an enabled endpoint (0 when none is).",
        value=figures["oldest_pending_age_s"],
    )


# --- What the alerting rules and an autoscaler read (deploy/prometheus, deploy/keda) ---------


def _backlog_metrics() -> Iterator[Metric]:
    age = GaugeMetricFamily(
        "moverz_queue_oldest_message_age_seconds",
        "Age of the oldest message ready to fetch per queue, from its first enqueue; 0 when none "
        "waits. What an autoscaler scales workers on.",
        labels=["queue"],
    )
    now_ms = time.time() * 1000
    for queue, oldest in oldest_waiting_ms(broker_redis(), QUEUES).items():
        age.add_metric([queue], 0 if oldest is None else max(now_ms - oldest, 0) / 1000)
    yield age


def _lease_metrics() -> Iterator[Metric]:
    stuck = Photo.objects.filter(
        status=Photo.Status.PROCESSING, lease_expires_at__lt=timezone.now()
    ).count()
    yield GaugeMetricFamily(
        "moverz_photos_lease_expired",
        "PROCESSING photos whose worker's lease has expired (PHOTO_LEASE_SECONDS): stuck until "
        "the relay hands them back.",
        value=stuck,
    )


def _circuit_metrics() -> Iterator[Metric]:
    circuit = GaugeMetricFamily(
        "moverz_ai_circuit_open",
        "1 while the shared circuit breaker skips the provider (AI_BREAKER_*), else 0.",
        labels=["provider"],
    )
    breaker = breaker_from_settings(redis_client=broker_redis())
    for provider in dict.fromkeys(settings.AI_PROVIDERS):
        circuit.add_metric([provider], 1 if breaker.is_open(provider) else 0)
    yield circuit


def _quota_metrics() -> Iterator[Metric]:
    """AI_QUOTAS as the shared limiter sees it now (ai_engine/quota.py)."""
    in_use = GaugeMetricFamily(
        "moverz_ai_quota_slots_in_use",
        "Provider calls holding a slot of the quota now (every worker process).",
        labels=["quota"],
    )
    limit = GaugeMetricFamily(
        "moverz_ai_quota_limit",
        "The quota's limits (AI_QUOTAS): requests, input_tokens, output_tokens per minute, and "
        "concurrency (calls at once); a dimension without a limit is left out.",
        labels=["quota", "dimension"],
    )
    saturation = GaugeMetricFamily(
        "moverz_ai_quota_saturation",
        "How empty the quota's budget is: 0 unused (its bucket full), 1 used up (photos wait "
        "for it), above 1 in debt after calls that used more than their estimate.",
        labels=["quota", "dimension"],
    )
    deferrals = CounterMetricFamily(
        "moverz_ai_quota_deferrals",
        "Photos deferred for a slot of the quota, by what was short (rpm, itpm, otpm, "
        "concurrency, fair, tenant, priority: behind a high-priority photo, floor: a normal "
        "photo's floor share, backoff: a 429's retry-after).",
        labels=["quota", "reason"],
    )
    for use in quota_from_settings(redis_client=broker_redis()).usage():
        name = use.quota.name
        in_use.add_metric([name], use.in_use)
        for dimension, maximum in (
            ("requests", use.quota.rpm),
            ("input_tokens", use.quota.itpm),
            ("output_tokens", use.quota.otpm),
            ("concurrency", use.quota.concurrency),
        ):
            if maximum:
                limit.add_metric([name, dimension], maximum)
        if use.quota.concurrency:
            saturation.add_metric([name, "concurrency"], use.in_use / use.quota.concurrency)
        for dimension, empty in use.saturation.items():
            saturation.add_metric([name, dimension], empty)
        for reason, count in sorted(use.denied.items()):
            deferrals.add_metric([name, reason], count)
    yield from (in_use, limit, saturation, deferrals)


ALERTING_SECTIONS: list[tuple[str, Callable[[], Iterable[Metric]]]] = [
    ("backlog", _backlog_metrics),
    ("leases", _lease_metrics),
    ("circuits", _circuit_metrics),
    ("quotas", _quota_metrics),
]
