"""Section 9: a busy morning at a provider's rate limit (issue 14).

ONE fake provider (tests/fakeai.py) enforces the limits for every worker process, as the real
provider does for every host: `rpm` requests a minute (token buckets, 429 with `retry-after`
beyond), with generous input and output token limits beside it, and a latency of 1–2 s
(log-normal). The service's `AI_QUOTAS` is set to the same limits (a branch without quotas
ignores it: the "before" figures).

Per worker configuration (`--quota-configs`: `2` processes, `4` on one host, `2x2` as two hosts:
two `rundramatiq` groups sharing Redis and the database), after a warm-up:

1. idle: the small projects' photos alone (5 × 10), enqueued as a burst; their enqueue → DONE.
2. busy: 600 photos of one project enqueued through the enqueue service, then, 3 s later, the
   5 × 10 of the small projects. Refused calls (the fake's 429s) and their share; the provider's
   utilisation while work was queued (calls it accepted ÷ what it would have accepted); every
   photo DONE; the small projects' enqueue → DONE against idle.
3. priority (when `Project.priority` exists): 500 normal photos, then 3 s later 10 photos of a
   `high` project: their enqueue → start (seen PROCESSING, and the provider call's start).

`--quick`: 120 + 5 × 4 photos at 60 RPM, 100 photos ahead of 5 high ones; figures not comparable.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Count

from bench import data
from bench.context import QUOTA_CONFIGS, Bench
from bench.infra import Child, fakeai_start, worker_start
from bench.stats import summary

#: The small projects enqueue this long after the big one started.
SMALL_AFTER_S = 3.0
POLL_S = 0.1


@dataclass(frozen=True)
class Plan:
    rpm: int
    itpm: int
    otpm: int
    concurrency: int
    big: int  # photos of the busy project
    small_projects: int
    small: int  # photos of each small project
    behind: int  # normal photos ahead of the high-priority ones
    high: int
    timeout_s: float  # a busy run stops waiting after this (the "before" figures retry a lot)


FULL = Plan(120, 400_000, 80_000, 16, 600, 5, 10, 500, 10, 900)
QUICK = Plan(60, 400_000, 80_000, 16, 120, 5, 4, 100, 5, 300)


def _fake(base_url: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{base_url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def ai_quotas(plan: Plan) -> str:
    """The service's AI_QUOTAS: the provider's own limits."""
    limits = {"rpm": plan.rpm, "itpm": plan.itpm, "otpm": plan.otpm}
    return json.dumps({"anthropic": limits | {"concurrency": plan.concurrency}})


def features() -> dict[str, bool]:
    """What this branch has: provider quotas (the AI_QUOTAS setting) and project priority."""
    from django.conf import settings

    from photos.models import Project

    fields = {field.name for field in Project._meta.get_fields()}
    return {"quotas": hasattr(settings, "AI_QUOTAS"), "priority": "priority" in fields}


def run(bench: Bench) -> dict[str, Any]:
    plan = QUICK if bench.options.quick else FULL
    latency, p95 = bench.options.quota_latency_ms, bench.options.quota_latency_p95_ms
    limits = ["--rpm", str(plan.rpm), "--itpm", str(plan.itpm), "--otpm", str(plan.otpm)]
    fake, base_url = fakeai_start(
        bench.children,
        "fakeai-quotas",
        latency_ms=latency,
        latency_p95_ms=p95,
        extra=[*limits, "--estimate-usage"],
    )
    found = features()
    out: dict[str, Any] = {
        "plan": asdict(plan),
        "features": found,
        "ai_quotas": ai_quotas(plan),
        "latency_ms": {"p50": latency, "p95": p95},
        "threads": bench.options.worker_threads,
        "configs": {},
    }
    projects = _projects(bench, plan, high=found["priority"])
    env = bench.env | {"ANTHROPIC_BASE_URL": base_url, "AI_QUOTAS": out["ai_quotas"]}
    try:
        for config in bench.options.quota_configs:
            groups = QUOTA_CONFIGS[config]
            workers = [
                worker_start(
                    bench.children,
                    f"worker-quotas-{config}-{index}",
                    env,
                    processes=processes,
                    threads=bench.options.worker_threads,
                )
                for index, processes in enumerate(groups)
            ]
            try:
                bench.log(f"quotas: {config} ({' + '.join(map(str, groups))} processes)")
                run = _config(bench, plan, base_url, projects, workers)
                out["configs"][config] = {"processes": list(groups)} | run
            finally:
                for worker in reversed(workers):
                    bench.children.stop(worker)
    finally:
        bench.children.stop(fake)
    return out


@dataclass(frozen=True)
class Projects:
    big: uuid.UUID
    small: tuple[uuid.UUID, ...]
    high: uuid.UUID | None


def _projects(bench: Bench, plan: Plan, *, high: bool) -> Projects:
    from photos.models import Project

    def make(name: str, **fields: Any) -> uuid.UUID:
        return Project.objects.create(owner_id=bench.user_id, name=name, **fields).pk

    return Projects(
        big=make("agency"),
        small=tuple(make(f"household {n}") for n in range(plan.small_projects)),
        high=make("premium", priority="high") if high else None,
    )


def _config(
    bench: Bench, plan: Plan, base_url: str, projects: Projects, workers: Sequence[Child]
) -> dict[str, Any]:
    _warm(bench, base_url, projects, workers)
    result: dict[str, Any] = {}
    bench.note_load("quotas idle")
    result["idle"] = _idle(bench, plan, base_url, projects, workers)
    bench.note_load("quotas busy")
    result["busy"] = _busy(bench, plan, base_url, projects, workers)
    if projects.high is None:
        result["priority"] = {"skipped": "no Project.priority on this branch"}
    else:
        bench.note_load("quotas priority")
        result["priority"] = _priority(bench, plan, base_url, projects, workers)
    return result


def _reset(bench: Bench, base_url: str) -> None:
    """No photos or messages left, the fake's counts zero and its buckets full."""
    bench.reset_pipeline_tables()
    _fake(base_url, "/reset", {})


def _insert(bench: Bench, project: uuid.UUID, count: int) -> list[str]:
    # One provider call per photo (the room is known), each photo its own bytes for the
    # identical-image check (data.photos_insert gives each its own SHA-256).
    return data.photos_insert(
        project_id=project, count=count, image=bench.small_image, room_type="living_room"
    )


def _enqueue(bench: Bench, ids: Sequence[str]) -> dict[str, float]:
    """Through the enqueue service, as the API does (the service picks the queue); when each
    photo's message was sent."""
    from photos.lifecycle import photo_enqueue_for_user

    sent = {}
    for photo_id in ids:
        photo_enqueue_for_user(user_id=bench.user_id, photo_id=uuid.UUID(photo_id))
        sent[photo_id] = time.time()
    return sent


def _warm(bench: Bench, base_url: str, projects: Projects, workers: Sequence[Child]) -> None:
    """A first burst at latency 0, not measured (pools grow, the SDK is imported)."""
    _reset(bench, base_url)
    _fake(base_url, "/latency", {"latency_ms": 0, "latency_p95_ms": None})
    try:
        ids = _insert(bench, projects.big, 4 * len(workers) * bench.options.worker_threads)
        _enqueue(bench, ids)
        _wait(ids, 300, workers)
    finally:
        _fake(
            base_url,
            "/latency",
            {
                "latency_ms": bench.options.quota_latency_ms,
                "latency_p95_ms": bench.options.quota_latency_p95_ms,
            },
        )


def _statuses(ids: Sequence[str]) -> dict[str, int]:
    from photos.models import Photo

    rows = Photo.objects.filter(pk__in=ids).order_by().values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def _wait(ids: Sequence[str], timeout: float, workers: Sequence[Child]) -> bool:
    """Until every photo is DONE or ERROR (True), or the timeout (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.popen.poll() is not None:
                raise RuntimeError(f"{worker.name} exited {worker.tail()}")
        counts = _statuses(ids)
        if counts.get("DONE", 0) + counts.get("ERROR", 0) >= len(ids):
            return True
        time.sleep(0.5)
    return False


def _e2e(ids: Sequence[str], sent: dict[str, float]) -> dict[str, Any]:
    """Enqueue → DONE of the photos of `ids` that are DONE (seconds)."""
    from photos.models import Photo

    rows = Photo.objects.filter(pk__in=ids, status=Photo.Status.DONE).values_list(
        "id", "processed_at"
    )
    return summary(
        (done.timestamp() - sent[str(pid)] for pid, done in rows if done is not None), digits=2
    )


def _calls(base_url: str, started: float, rpm: int, window_s: float = 60.0) -> dict[str, Any]:
    """What the provider saw: calls accepted and refused, and its utilisation while work was
    queued, from the first enqueue to the last call that arrived (after it nothing waited).

    The provider's bucket starts full: in its first minute it accepts up to twice its RPM.
    `steady` leaves that minute out: accepted calls a minute ÷ `rpm` from then on (None for a
    span too short). `vs_max` is over the whole span: the calls accepted ÷ the most the provider
    accepts in `T` seconds, `rpm` (the full bucket) + `rpm × T / window` (its refill)."""
    stats = _fake(base_url, "/stats")
    calls = _fake(base_url, "/calls")
    accepted, rejected = calls["accepted"], calls["rejected"]
    total = len(accepted) + len(rejected)
    end = max([*accepted, *rejected], default=started)
    span = max(end - started, 1e-9)
    steady_span = span - window_s
    in_steady = [t for t in accepted if t >= started + window_s]
    per_minute = [0] * (int(span // window_s) + 1)
    for moment in accepted:
        per_minute[min(int((moment - started) // window_s), len(per_minute) - 1)] += 1
    return {
        "accepted": len(accepted),
        "rejected": len(rejected),
        "rejected_pct": round(100 * len(rejected) / total, 2) if total else 0.0,
        "rejected_by_limit": {
            key.split(":", 1)[1]: value
            for key, value in stats.items()
            if key.startswith("rate_limited:")
        },
        "queued_span_s": round(span, 1),
        "utilisation_vs_max_pct": round(100 * len(accepted) / (rpm + rpm * span / window_s), 1),
        "utilisation_steady_pct": (
            round(100 * len(in_steady) / (rpm * steady_span / window_s), 1)
            if steady_span >= 10
            else None
        ),
        "accepted_per_minute": per_minute,
    }


def _attempts(ids: Sequence[str]) -> dict[str, Any]:
    """Provider calls per photo (AiMetric) and how the failed ones failed."""
    from aimetrics.models import AiMetric

    rows = AiMetric.objects.filter(photo_id__in=[uuid.UUID(i) for i in ids])
    failed = rows.filter(success=False).order_by().values("error_type").annotate(n=Count("id"))
    count = rows.count()
    return {
        "calls": count,
        "calls_per_photo": round(count / max(len(ids), 1), 2),
        "failed_by_type": {row["error_type"] or "": row["n"] for row in failed},
    }


def _idle(
    bench: Bench, plan: Plan, base_url: str, projects: Projects, workers: Sequence[Child]
) -> dict[str, Any]:
    _reset(bench, base_url)
    ids = [pid for project in projects.small for pid in _insert(bench, project, plan.small)]
    started = time.time()
    sent = _enqueue(bench, ids)
    finished = _wait(ids, 300, workers)
    return {
        "photos": len(ids),
        "finished": finished,
        "statuses": _statuses(ids),
        "e2e_s": _e2e(ids, sent),
        "calls": _calls(base_url, started, plan.rpm),
    }


def _busy(
    bench: Bench, plan: Plan, base_url: str, projects: Projects, workers: Sequence[Child]
) -> dict[str, Any]:
    _reset(bench, base_url)
    big = _insert(bench, projects.big, plan.big)
    small = [pid for project in projects.small for pid in _insert(bench, project, plan.small)]
    started = time.time()
    sent = _enqueue(bench, big)
    time.sleep(max(started + SMALL_AFTER_S - time.time(), 0))
    sent |= _enqueue(bench, small)
    finished = _wait([*big, *small], plan.timeout_s, workers)
    e2e_big = _e2e(big, sent)
    return {
        "photos": len(big) + len(small),
        "finished": finished,
        "wall_s": round(time.time() - started, 1),
        "statuses": _statuses([*big, *small]),
        "small_statuses": _statuses(small),
        "e2e_small_s": _e2e(small, sent),
        "e2e_big_s": e2e_big,
        "calls": _calls(base_url, started, plan.rpm),
        "attempts": _attempts([*big, *small]),
    }


def _priority(
    bench: Bench, plan: Plan, base_url: str, projects: Projects, workers: Sequence[Child]
) -> dict[str, Any]:
    """High-priority photos behind `plan.behind` normal ones: when each was first seen
    PROCESSING (polled every 0.1 s) and when its provider call started (AiMetric: the call's
    end minus its latency). Once they are all DONE the normal backlog is dropped."""
    from aimetrics.models import AiMetric
    from photos.models import Photo

    assert projects.high is not None
    _reset(bench, base_url)
    behind = _insert(bench, projects.big, plan.behind)
    high = _insert(bench, projects.high, plan.high)
    started = time.time()
    sent = _enqueue(bench, behind)
    time.sleep(max(started + SMALL_AFTER_S - time.time(), 0))
    sent |= _enqueue(bench, high)
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = Photo.objects.filter(pk__in=high).values_list("id", "status")
        now = time.time()
        for pid, status in rows:
            if status != Photo.Status.PENDING:
                seen.setdefault(str(pid), now)
        counts = _statuses(high)
        if counts.get("DONE", 0) + counts.get("ERROR", 0) >= len(high):
            break
        time.sleep(POLL_S)
    first_call: dict[str, float] = {}
    for metric_photo, created, latency in AiMetric.objects.filter(
        photo_id__in=[uuid.UUID(i) for i in high]
    ).values_list("photo_id", "created_at", "latency_ms"):
        began = (created - timedelta(milliseconds=latency)).timestamp()
        key = str(metric_photo)
        first_call[key] = min(first_call.get(key, began), began)
    behind_done = _statuses(behind).get("DONE", 0)
    return {
        "behind": len(behind),
        "high": len(high),
        "high_statuses": _statuses(high),
        "behind_done_meanwhile": behind_done,
        "to_processing_s": summary((seen[p] - sent[p] for p in seen), digits=2),
        "to_provider_call_s": summary((first_call[p] - sent[p] for p in first_call), digits=2),
        "to_done_s": _e2e(high, sent),
    }
