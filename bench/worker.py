"""Sections 4–5: the worker. Real `rundramatiq` processes, the fake Anthropic server on loopback.

4. Overhead: photos with no room type (one provider call each: the room and the items),
   provider latency 0. Throughput of a real worker over 2,000 photos, with the CPU seconds each
   process spent per photo; then, in this process, one photo at a time through `photo_analyze`,
   timed around the provider calls (the time that is ours) and with every SQL statement counted.
   Then what a photo costs at the provider, for the two-call flow (AI_ROOM_SEPARATE_CALL) and the
   one-call flow side by side: calls, input and output tokens (the fake server estimates them
   from each request and answer as the providers count), bytes sent and dollars.
5. Scaling: photos with a room type (one provider call each) and a provider latency of 1 s, then
   log-normal (P50 3 s, P95 7 s); processes × threads 1×8, 2×16, 2×32, 2×64; a burst of 100
   photos each. The ideal is a perfect scheduler with the same slots and the latencies the
   provider actually drew (recorded in AiMetric): its makespan over ours is the fraction.
"""

from __future__ import annotations

import heapq
import json
import math
import time
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django.db.models import Count, Max, Min

from bench import data
from bench.context import Bench
from bench.infra import Child, fakeai_start, tree_cpu_seconds, wait_until, worker_start
from bench.stats import summary

SCALING = ((1, 8), (2, 16), (2, 32), (2, 64))
CONNECTION_ERRORS = (
    "OperationalError",
    "InterfaceError",
    "PoolTimeout",
    "too many clients",
    "connection failed",
    "could not connect",
)


def _send(photo_ids: Sequence[str]) -> dict[str, float]:
    """One message per photo (the photos are already queued in the database); send times."""
    from photos.tasks import analyze_photo

    sent = {}
    for photo_id in photo_ids:
        analyze_photo.send(photo_id)
        sent[photo_id] = time.time()
    return sent


def _wait_finished(ids: Sequence[str], timeout: float, worker: Child) -> dict[str, int]:
    """Waits until every photo of `ids` is DONE or ERROR; their count by status."""
    from photos.models import Photo

    def finished() -> dict[str, int] | None:
        rows = Photo.objects.filter(pk__in=ids).order_by().values("status").annotate(n=Count("id"))
        counts = {row["status"]: row["n"] for row in rows}
        if counts.get("DONE", 0) + counts.get("ERROR", 0) >= len(ids):
            return counts
        return None

    found: dict[str, int] = wait_until("photos to finish", finished, timeout, worker)
    return found


def _worker_env(bench: Bench, base_url: str, **extra: str) -> dict[str, str]:
    return bench.env | {"ANTHROPIC_BASE_URL": base_url, **extra}


def overhead(bench: Bench) -> dict[str, Any]:
    """Section 4."""
    count = 400 if bench.options.quick else 2000
    fake, base_url = fakeai_start(bench.children, "fakeai-0ms", latency_ms=0)
    out: dict[str, Any] = {"photos": count}
    try:
        out["http_fake"] = _throughput(bench, _worker_env(bench, base_url), count, fake)
        # The same without HTTP and SDK: what the pipeline itself costs (fewer photos: it only
        # tells the two apart).
        out["inprocess_fake"] = _throughput(
            bench, _worker_env(bench, base_url, AI_PROVIDERS="fake"), count // 4, fake
        )
        out["serial"] = _serial(bench, base_url, 50 if bench.options.quick else 150)
    finally:
        bench.children.stop(fake)
    fake, base_url = fakeai_start(
        bench.children, "fakeai-usage", latency_ms=0, extra=["--estimate-usage"]
    )
    try:
        out["flows"] = _flows(bench, base_url, 10 if bench.options.quick else 30)
    finally:
        bench.children.stop(fake)
    return out


def _flows(bench: Bench, base_url: str, count: int) -> dict[str, Any]:
    """Photos without a room type, one at a time in this process, through each flow: per photo,
    provider calls, tokens, request bytes and cost."""
    from django.conf import settings
    from django.db.models import Sum
    from django.test.utils import override_settings

    from ai_engine.anthropic_provider import AnthropicProvider
    from ai_engine.engine import AiEngine
    from aimetrics.models import AiMetric
    from photos.services.analysis import photo_analyze

    engine = AiEngine(
        [
            AnthropicProvider(
                api_key=settings.ANTHROPIC_API_KEY or "bench",
                model=settings.ANTHROPIC_MODEL,
                timeout_s=30,
                base_url=base_url,
            )
        ]
    )
    flows = {}
    for name, separate in (("two_calls", True), ("one_call", False)):
        bench.reset_pipeline_tables()
        ids = data.photos_insert(
            project_id=bench.project_id, count=count, image=bench.small_image, queued=True
        )
        bytes_before = _fake_stats(base_url).get("request_bytes", 0)
        with override_settings(AI_ROOM_SEPARATE_CALL=separate):
            for photo_id in ids:
                outcome = photo_analyze(photo_id=photo_id, engine=engine)
                if outcome != "done":
                    raise RuntimeError(f"photo {photo_id}: {outcome}")
        sent = _fake_stats(base_url).get("request_bytes", 0) - bytes_before
        totals = AiMetric.objects.filter(photo_id__in=ids).aggregate(
            calls=Count("id"),
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            cost=Sum("cost_usd"),
        )
        flows[name] = {
            "photos": count,
            "calls": round(totals["calls"] / count, 2),
            "tokens_in": round((totals["tokens_in"] or 0) / count),
            "tokens_out": round((totals["tokens_out"] or 0) / count),
            "bytes_sent": round(sent / count),
            "cost_usd": float((totals["cost"] or 0) / count),
            "model": settings.ANTHROPIC_MODEL,
        }
    return flows


def _fake_stats(base_url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{base_url}/stats", timeout=10) as response:
        stats: dict[str, int] = json.loads(response.read())
    return stats


def _throughput(bench: Bench, env: dict[str, str], count: int, fake: Child) -> dict[str, Any]:
    from photos.models import Photo

    processes, threads = bench.options.worker_processes, bench.options.worker_threads
    worker = worker_start(bench.children, "worker", env, processes=processes, threads=threads)
    try:
        _warm(bench, worker, 2 * processes * threads)
        ids = data.photos_insert(
            project_id=bench.project_id, count=count, image=bench.small_image, queued=True
        )
        cpu_before = {
            "worker": tree_cpu_seconds(worker.pid),
            "fakeai": tree_cpu_seconds(fake.pid),
            "redis": tree_cpu_seconds(bench.redis_pid),
        }
        pg_before = bench.backend_cpu()
        bench.log(f"worker overhead: {count} photos, {processes}×{threads}")
        started = time.time()
        sent = _send(ids)
        statuses = _wait_finished(ids, 600, worker)
        cpu_after = {
            "worker": tree_cpu_seconds(worker.pid),
            "fakeai": tree_cpu_seconds(fake.pid),
            "redis": tree_cpu_seconds(bench.redis_pid),
        }
        pg_after = bench.backend_cpu()
    finally:
        bench.children.stop(worker)
    span = Photo.objects.filter(pk__in=ids).aggregate(
        first=Min("processed_at"), last=Max("processed_at")
    )
    makespan = span["last"].timestamp() - started
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    cpu["postgres"] = sum(after - pg_before.get(pid, 0.0) for pid, after in pg_after.items())
    return {
        "config": f"{processes}x{threads}",
        "photos": count,
        "statuses": statuses,
        "send_s": round(max(sent.values()) - started, 3),
        "makespan_s": round(makespan, 3),
        "photos_per_s": round(count / makespan, 1),
        "cpu_ms_per_photo": {name: round(1000 * value / count, 3) for name, value in cpu.items()},
        "connection_errors": _connection_errors(worker.log()),
    }


def _connection_errors(log: str) -> int:
    return sum(log.count(marker) for marker in CONNECTION_ERRORS)


class TimedProvider:
    """Wraps a provider and adds up the time spent inside it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = getattr(inner, "model", "")
        self.seconds = 0.0

    def _timed(self, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return call()
        finally:
            self.seconds += time.perf_counter() - started

    def detect_room(self, image: bytes, *, max_tokens: int | None = None) -> Any:
        return self._timed(lambda: self.inner.detect_room(image, max_tokens=max_tokens))

    def analyze_photo(
        self,
        image: bytes,
        room_type: str | None,
        catalogue_keys: Sequence[str] = (),
        *,
        max_tokens: int | None = None,
    ) -> Any:
        return self._timed(
            lambda: self.inner.analyze_photo(
                image, room_type, catalogue_keys, max_tokens=max_tokens
            )
        )


class QueryCounter:
    """Every SQL statement Django sends (connection.execute_wrapper), with its time."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.statements: dict[str, int] = {}

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.count += 1
            key = " ".join(sql.split()[:4])[:60]
            self.statements[key] = self.statements.get(key, 0) + 1


@contextmanager
def _checkouts() -> Any:
    """Counts connections taken from the pool (each one a health check: a round trip)."""
    from django.db.backends.signals import connection_created

    counter = {"n": 0}

    def created(**kwargs: Any) -> None:
        counter["n"] += 1

    connection_created.connect(created, weak=False)
    try:
        yield counter
    finally:
        connection_created.disconnect(created)


def _serial(bench: Bench, base_url: str, count: int) -> dict[str, Any]:
    """One photo at a time through photo_analyze in this process: our time, and the queries."""
    from django.conf import settings

    import photos.services.analysis as analysis
    from ai_engine.anthropic_provider import AnthropicProvider
    from ai_engine.engine import AiEngine
    from photos.services.analysis import photo_analyze

    bench.reset_pipeline_tables()
    ids = data.photos_insert(
        project_id=bench.project_id, count=count + 20, image=bench.small_image, queued=True
    )
    provider = TimedProvider(
        AnthropicProvider(
            api_key=settings.ANTHROPIC_API_KEY or "bench",
            model=settings.ANTHROPIC_MODEL,
            timeout_s=30,
            base_url=base_url,
        )
    )
    engine = AiEngine([provider])
    preflight = {"s": 0.0}
    original_preflight = analysis._preflight

    def timed_preflight(original: bytes) -> Any:
        started = time.perf_counter()
        try:
            return original_preflight(original)
        finally:
            preflight["s"] += time.perf_counter() - started

    for photo_id in ids[:20]:  # warm: SDK client, catalogue keys, pool
        photo_analyze(photo_id=photo_id, engine=engine)
    provider.seconds = 0.0
    totals, ours, queries, checkouts_per_photo = [], [], [], []
    statements: dict[str, int] = {}
    db_seconds = 0.0
    analysis._preflight = timed_preflight
    try:
        for photo_id in ids[20:]:
            counter = QueryCounter()
            before = provider.seconds
            with _checkouts() as checkouts, connection.execute_wrapper(counter):
                started = time.perf_counter()
                outcome = photo_analyze(photo_id=photo_id, engine=engine)
                elapsed = time.perf_counter() - started
            if outcome != "done":
                raise RuntimeError(f"photo {photo_id}: {outcome}")
            totals.append(elapsed)
            ours.append(elapsed - (provider.seconds - before))
            queries.append(counter.count)
            checkouts_per_photo.append(checkouts["n"])
            db_seconds += counter.seconds
            for key, n in counter.statements.items():
                statements[key] = statements.get(key, 0) + n
    finally:
        analysis._preflight = original_preflight
    total_s = sum(totals)
    provider_s = provider.seconds
    return {
        "photos": count,
        "total_ms": summary(totals, scale=1000),
        "ours_ms": summary(ours, scale=1000),
        "breakdown_ms_per_photo": {
            "provider_calls (SDK + HTTP + fake server)": round(1000 * provider_s / count, 3),
            "sql (Django statements, client-side)": round(1000 * db_seconds / count, 3),
            "preflight (decode, re-encode)": round(1000 * preflight["s"] / count, 3),
            "rest (Python, Redis, pool checkouts)": round(
                1000 * (total_s - provider_s - db_seconds - preflight["s"]) / count, 3
            ),
        },
        "queries_per_photo": summary(queries, digits=2),
        "pool_checkouts_per_photo": summary(checkouts_per_photo, digits=2),
        "statements": {key: round(n / count, 2) for key, n in sorted(statements.items())},
    }


def _ideal_makespan(durations: Sequence[float], slots: int) -> float:
    """A perfect scheduler: each job, in order, on the first free slot."""
    free = [0.0] * min(slots, max(len(durations), 1))
    heapq.heapify(free)
    end = 0.0
    for duration in durations:
        start = heapq.heappop(free)
        heapq.heappush(free, start + duration)
        end = max(end, start + duration)
    return end


def _set_latency(base_url: str, latency_ms: int, latency_p95_ms: int | None = None) -> None:
    body = json.dumps({"latency_ms": latency_ms, "latency_p95_ms": latency_p95_ms}).encode()
    request = urllib.request.Request(
        f"{base_url}/latency", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def _warm(bench: Bench, worker: Child, count: int) -> None:
    """A first burst, not measured, of at least one message per thread (with a prefetch of one
    per thread, every process gets some): connection pools grow, caches fill."""
    bench.reset_pipeline_tables()
    ids = data.photos_insert(
        project_id=bench.project_id,
        count=count,
        image=bench.small_image,
        queued=True,
        room_type="living_room",
    )
    _send(ids)
    _wait_finished(ids, 300, worker)


def scaling(bench: Bench) -> dict[str, Any]:
    """Section 5. One fake server whose latency model is switched between bursts, and one
    worker per configuration, warmed, then given a burst per latency model."""
    burst = 40 if bench.options.quick else 100
    models: tuple[tuple[str, int, int | None], ...] = (
        ("constant_1s", 1000, None),
        ("lognormal_p50_3s_p95_7s", 3000, 7000),
    )
    configs = SCALING if not bench.options.quick else ((1, 8), (2, 64))
    out: dict[str, Any] = {label: {} for label, _, _ in models}
    fake, base_url = fakeai_start(bench.children, "fakeai-scaling", latency_ms=0)
    try:
        for processes, threads in configs:
            name = f"worker-{processes}x{threads}"
            worker = worker_start(
                bench.children,
                name,
                _worker_env(bench, base_url),
                processes=processes,
                threads=threads,
            )
            try:
                _set_latency(base_url, 0)
                _warm(bench, worker, processes * threads)
                for label, latency, p95 in models:
                    _set_latency(base_url, latency, p95)
                    bench.log(f"scaling: {label}, burst of {burst} on {processes}×{threads}")
                    out[label][f"{processes}x{threads}"] = _burst(
                        bench, worker, processes * threads, burst
                    )
            finally:
                bench.children.stop(worker)
    finally:
        bench.children.stop(fake)
    return out


def _burst(bench: Bench, worker: Child, slots: int, burst: int) -> dict[str, Any]:
    from aimetrics.models import AiMetric
    from photos.models import Photo

    bench.reset_pipeline_tables()
    ids = data.photos_insert(
        project_id=bench.project_id,
        count=burst,
        image=bench.small_image,
        queued=True,
        room_type="living_room",
    )
    log_before = len(worker.log())
    started = time.time()
    sent = _send(ids)
    statuses = _wait_finished(ids, 300, worker)
    rows = Photo.objects.filter(pk__in=ids).values_list("id", "processed_at")
    e2e = [done.timestamp() - sent[str(pid)] for pid, done in rows if done is not None]
    makespan = max(done.timestamp() for _, done in rows if done is not None) - started
    # The latency each photo's provider call actually had, in the order the photos were sent.
    latency = dict(
        AiMetric.objects.filter(photo_id__in=ids, success=True).values_list(
            "photo_id", "latency_ms"
        )
    )
    durations = [latency.get(_uuid(pid), 0) / 1000 for pid in ids]
    ideal = _ideal_makespan(durations, slots)
    mean_latency = sum(durations) / len(durations)
    return {
        "slots": slots,
        "photos": burst,
        "statuses": statuses,
        "makespan_s": round(makespan, 3),
        "ideal_makespan_s": round(ideal, 3),
        "fraction_of_ideal": round(ideal / makespan, 3),
        "throughput_per_s": round(burst / makespan, 2),
        "slots_over_mean_latency_per_s": round(slots / mean_latency, 2),
        "ideal_throughput_per_s": round(burst / ideal, 2),
        "provider_latency_ms": summary(durations, scale=1000, digits=0),
        "e2e_ms": summary(e2e, scale=1000, digits=0),
        "connection_errors": _connection_errors(worker.log()[log_before:]),
        "waves": math.ceil(burst / slots),
    }


def _uuid(value: str) -> Any:
    import uuid

    return uuid.UUID(value)
