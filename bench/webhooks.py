"""Section 9: webhook delivery (issue 13). Real `rundramatiq` workers deliver to a receiver in
this process (tests/webhook_receiver.py, the one the tests and the fault suite use) over loopback
HTTP; the receiver records each request's arrival (time.time()) and what it answered.

1. Latency: photos finish at 50/s (bench/hookload.py `finish`, two processes of their own: the
   worker's claim and DONE moves, the DONE transaction writing the outbox row) with one endpoint
   subscribed to photo.done; the latency of each is its first 2xx arrival at the receiver minus
   the photo's `processed_at` (stamped in the DONE transaction, before its commit). The worker is
   the Procfile's (2 processes × 8 threads). The photos skip the provider call: a 2 × 8 worker
   analyses about 30 photos/s with the fake provider on this machine (section 4), short of 50.
2. Throughput: a backlog of N deliveries (one transaction of the outbox service, N messages sent
   on its commit) to a receiver answering 200 at once, one worker process (1 × 8 threads):
   deliveries/s between the first and the last 2xx, and the CPU each delivery cost the worker,
   PostgreSQL and Redis. The floor: the same POSTs from 8 threads of plain http.client in a
   process of their own, a new connection each, to the same receiver (bench/hookload.py `post`).
3. Burst: 1,000 photo.done events (the DONE signal in 1,000 transactions, as fast as this
   process sends them) to a receiver that answers 500 to everything for its first minute, then
   200, under a short retry schedule (RETRY_SCHEDULE, its ±10 % jitter included): every event
   delivered, distinct webhook-ids per event (must be 1), duplicates with the same id (allowed),
   and the time from the recovery to the last delivery.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Max, Min

from bench import data
from bench.context import Bench
from bench.infra import ROOT, Child, json_line, tree_cpu_seconds, wait_until, worker_start
from bench.stats import summary
from tests.webhook_receiver import Decide, Received, Receiver, Reply

RATE = 50  # photos/s
FINISHERS = 3  # processes finishing photos, together at RATE
#: The retry schedule of the bench's workers (WEBHOOK_RETRY_SCHEDULE, seconds): attempts at
#: about 0, 5, 15, 35 and 75 s, so a receiver failing for 60 s gets its events at the fifth.
RETRY_SCHEDULE = "5,10,20,40,80,160"
QUICK_RETRY_SCHEDULE = "1,2,4,8,16,32"


def run(bench: Bench) -> dict[str, Any]:
    out: dict[str, Any] = {}
    receiver = Receiver()
    try:
        out["throughput"] = _throughput(bench, receiver)
        schedule = QUICK_RETRY_SCHEDULE if bench.options.quick else RETRY_SCHEDULE
        processes, threads = bench.options.worker_processes, bench.options.worker_threads
        worker = worker_start(
            bench.children,
            f"worker-webhooks-{processes}x{threads}",
            _worker_env(bench, WEBHOOK_RETRY_SCHEDULE=schedule),
            processes=processes,
            threads=threads,
        )
        try:
            out["latency"] = _latency(bench, receiver, worker)
            out["burst"] = _burst(bench, receiver, worker, schedule)
        finally:
            bench.children.stop(worker)
    finally:
        receiver.close()
    _reset(bench)
    return out


def _worker_env(bench: Bench, **extra: str) -> dict[str, str]:
    # A receiver on loopback over plain HTTP: the two development settings allow it. The photos
    # the finishers move are queued without a message: the relay must not send them one (it
    # would after 30 s, and the worker would then analyse them beside the deliveries).
    return bench.env | {
        "WEBHOOK_ALLOW_HTTP": "1",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "PHOTO_RELAY_GRACE_SECONDS": "3600",
        **extra,
    }


def _reset(bench: Bench) -> None:
    bench.reset_pipeline_tables()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE webhooks_webhookattempt, webhooks_webhookdelivery, webhooks_webhookendpoint"
        )


def _endpoint(bench: Bench, receiver: Receiver) -> Any:
    from django.contrib.auth import get_user_model

    from webhooks.services import endpoint_create

    owner = get_user_model().objects.get(pk=bench.user_id)
    return endpoint_create(owner=owner, url=receiver.url, events=["photo.done"])


def _hookload(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.hookload"],
        cwd=ROOT,
        input=json.dumps(spec).encode(),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"hookload failed: {result.stderr.decode(errors='replace')[-2000:]}")
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def _deliveries_settled(count: int, timeout: float, worker: Child) -> dict[str, int]:
    """Waits until `count` deliveries exist and none is PENDING; their count by status."""
    from webhooks.models import WebhookDelivery

    def settled() -> dict[str, int] | None:
        rows = WebhookDelivery.objects.order_by().values("status").annotate(n=Count("id"))
        counts = {row["status"]: row["n"] for row in rows}
        if sum(counts.values()) >= count and not counts.get("PENDING"):
            return counts
        return None

    found: dict[str, int] = wait_until("deliveries to settle", settled, timeout, worker)
    return found


def _first_ok(requests: Sequence[Received]) -> dict[str, Received]:
    """webhook-id -> its first request answered 2xx."""
    first: dict[str, Received] = {}
    for request in requests:
        if request.ok and request.webhook_id not in first:
            first[request.webhook_id] = request
    return first


def _cpu(bench: Bench, worker: Child) -> dict[str, Any]:
    return {
        "worker": tree_cpu_seconds(worker.pid),
        "redis": tree_cpu_seconds(bench.redis_pid),
        "postgres": bench.backend_cpu(),
    }


def _cpu_ms_per(before: dict[str, Any], after: dict[str, Any], items: int) -> dict[str, float]:
    postgres = sum(cpu - before["postgres"].get(pid, 0.0) for pid, cpu in after["postgres"].items())
    spent = {
        "worker": after["worker"] - before["worker"],
        "postgres": postgres,
        "redis": after["redis"] - before["redis"],
    }
    return {name: round(1000 * value / max(items, 1), 3) for name, value in spent.items()}


# -- 1. latency at 50 photos/s ---------------------------------------------------------------


def _finish_photos(bench: Bench, count: int, worker: Child) -> dict[str, Any]:
    """`count` photos inserted queued (no message: the workers' relay grace is an hour) and
    finished at RATE by bench/hookload.py."""
    ids = data.photos_insert(
        project_id=bench.project_id,
        count=count,
        image=bench.small_image,
        queued=True,
        room_type="living_room",
    )
    children = []
    for offset in range(FINISHERS):
        spec = {"mode": "finish", "ids": ids[offset::FINISHERS], "rate": RATE}
        with (bench.workdir / f"finisher-{offset}.log").open("ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "bench.hookload"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(spec | {"offset": offset, "stride": FINISHERS}) + "\n")
        child.stdin.flush()
        children.append(child)
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("a finisher did not start")
        start_at = time.time() + 0.2
        runs = []
        for child in children:
            output, _ = child.communicate(f"{start_at}\n", timeout=count / RATE + 120)
            if child.returncode != 0:
                raise RuntimeError(f"finisher failed ({child.returncode})")
            runs.append(json_line(output))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    from photos.models import Photo

    span = Photo.objects.filter(pk__in=ids).aggregate(
        first=Min("processed_at"), last=Max("processed_at")
    )
    seconds = (span["last"] - span["first"]).total_seconds() if span["last"] else 0.0
    return {
        "ids": ids,
        "finishers": FINISHERS,
        "done": sum(run["done"] for run in runs),
        "skipped": sum(run["skipped"] for run in runs),
        "achieved_rate": round((count - 1) / seconds, 2) if seconds else None,
        "start_lag_ms": summary([lag for run in runs for lag in run["start_lag_ms"]], scale=1000),
    }


def _latency(bench: Bench, receiver: Receiver, worker: Child) -> dict[str, Any]:
    from photos.models import Photo
    from webhooks.models import WebhookDelivery

    _reset(bench)
    _endpoint(bench, receiver)
    receiver.answer(Reply(200))
    warm = _finish_photos(bench, RATE * 2, worker)  # pools, caches; not measured
    _deliveries_settled(len(warm["ids"]), 120, worker)
    _reset(bench)
    _endpoint(bench, receiver)
    receiver.clear()
    count = RATE * (6 if bench.options.quick else 20)
    bench.log(f"webhooks: {count} photos finishing at {RATE}/s, worker {worker.name}")
    before = _cpu(bench, worker)
    finished = _finish_photos(bench, count, worker)
    statuses = _deliveries_settled(count, 120, worker)
    after = _cpu(bench, worker)
    time.sleep(0.5)  # a late duplicate, if any, is counted
    requests = receiver.snapshot()
    first = _first_ok(requests)
    done_at = {
        str(pk): at.timestamp()
        for pk, at in Photo.objects.filter(pk__in=finished["ids"]).values_list("pk", "processed_at")
        if at is not None
    }
    from_done, from_outbox, recorded = [], [], []
    for delivery_id, body, created, delivered in WebhookDelivery.objects.values_list(
        "id", "body", "created_at", "delivered_at"
    ):
        hit = first.get(f"msg_{delivery_id.hex}")
        photo_id = json.loads(body)["data"]["photo"]["id"]
        if hit is None or photo_id not in done_at:
            continue
        from_done.append(hit.wall - done_at[photo_id])
        from_outbox.append(hit.wall - created.timestamp())
        if delivered is not None:
            recorded.append(delivered.timestamp() - done_at[photo_id])
    finished.pop("ids")
    return {
        "photos": count,
        "rate": RATE,
        "worker": worker.name.rsplit("-", 1)[-1],
        "finisher": finished,
        "statuses": statuses,
        "requests": len(requests),
        "non_2xx": sum(not request.ok for request in requests),
        "delivered": len(first),
        "from_done_ms": summary(from_done, scale=1000, digits=1),
        "from_outbox_row_ms": summary(from_outbox, scale=1000, digits=1),
        "done_to_recorded_ms": summary(recorded, scale=1000, digits=1),
        "cpu_ms_per_delivery": _cpu_ms_per(before, after, len(first)),
    }


# -- 2. deliveries per second, one worker process ----------------------------------------------


def _photo_body(bench: Bench) -> str:
    """The photo.done body of a DONE photo, as the outbox writes it."""
    from photos.api.serializers import PhotoSerializer
    from photos.models import Photo
    from webhooks.events import webhook_body

    (photo_id,) = data.photos_insert(
        project_id=bench.project_id, count=1, image=bench.small_image, done=True
    )
    photo = Photo.objects.get(pk=photo_id)
    return webhook_body(event_type="photo.done", data={"photo": PhotoSerializer(photo).data})


def _backlog(endpoint_id: uuid.UUID, body: str, count: int) -> None:
    """`count` deliveries in one transaction; their messages go on its commit."""
    from webhooks.events import webhook_deliveries_create

    with transaction.atomic():
        webhook_deliveries_create(
            endpoint_ids=[endpoint_id] * count, event_type="photo.done", body=body
        )


def _throughput(bench: Bench, receiver: Receiver) -> dict[str, Any]:
    """The backlog is written (and its messages sent) before the worker starts, so that this
    process only receives while the worker delivers; the worker's CPU is counted from its
    ready line, over the deliveries made after it."""
    from webhooks.models import WebhookDelivery

    _reset(bench)
    endpoint = _endpoint(bench, receiver)
    body = _photo_body(bench)
    receiver.answer(Reply(200))
    receiver.clear()
    threads = bench.options.worker_threads
    count = 600 if bench.options.quick else 3000
    began = time.time()
    _backlog(endpoint.pk, body, count)
    written = time.time() - began
    bench.log(f"webhooks: a backlog of {count} deliveries, one worker process (1×{threads})")
    name = f"worker-webhooks-1x{threads}"
    worker = worker_start(bench.children, name, _worker_env(bench), processes=1, threads=threads)
    try:
        before = _cpu(bench, worker)
        delivered_before = WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.DELIVERED
        ).count()
        statuses = _deliveries_settled(count, 300, worker)
        after = _cpu(bench, worker)
    finally:
        bench.children.stop(worker)
    requests = receiver.snapshot()
    arrivals = sorted(request.wall for request in _first_ok(requests).values())
    between = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    # The steady middle: without the worker's first and last moments (pools, the last threads).
    tenth = len(arrivals) // 10
    middle = arrivals[tenth : len(arrivals) - tenth]
    out: dict[str, Any] = {
        "deliveries": count,
        "worker": f"1x{threads}",
        "statuses": statuses,
        "requests": len(requests),
        "non_2xx": sum(not request.ok for request in requests),
        "backlog_written_s": round(written, 3),
        "per_s": round((len(arrivals) - 1) / between, 1) if between else None,
        "per_s_middle_80pct": round((len(middle) - 1) / (middle[-1] - middle[0]), 1)
        if len(middle) > 1 and middle[-1] > middle[0]
        else None,
        "delivered_before_cpu_snapshot": delivered_before,
        "cpu_ms_per_delivery": _cpu_ms_per(before, after, count - delivered_before),
    }
    receiver.clear()
    headers = {
        "Content-Type": "application/json",
        "webhook-id": "msg_floor",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1," + "A" * 44,
    }
    spec = {"mode": "post", "url": receiver.url, "body": body, "headers": headers}
    out["floor_http"] = _hookload(spec | {"count": count, "threads": threads}, timeout=300)
    receiver.clear()
    return out


# -- 3. a burst to a receiver that fails for a minute ------------------------------------------


def _failing_until(recovers: float) -> Decide:
    """500 to every request until `recovers` (time.monotonic()), then 200."""

    def decide(request: Received, earlier: list[Received]) -> Reply:
        return Reply(200 if time.monotonic() >= recovers else 500)

    return decide


def _burst(bench: Bench, receiver: Receiver, worker: Child, schedule: str) -> dict[str, Any]:
    from photos.models import Photo
    from photos.signals import photo_done
    from webhooks.models import WebhookDelivery

    events = 200 if bench.options.quick else 1000
    failing_s = 15.0 if bench.options.quick else 60.0
    _reset(bench)
    receiver.secret = _endpoint(bench, receiver).secret  # every request's signature checked
    ids = data.photos_insert(
        project_id=bench.project_id, count=events, image=bench.small_image, done=True
    )
    project_id = bench.project_id
    receiver.clear()
    started = time.monotonic()
    recovers = started + failing_s
    started_wall = time.time()
    receiver.decide = _failing_until(recovers)
    bench.log(f"webhooks: a burst of {events} events, receiver failing for {failing_s:.0f} s")
    try:
        for photo_id in ids:
            with transaction.atomic():  # what the DONE transaction does after its UPDATE
                photo_done.send(sender=Photo, photo_id=uuid.UUID(photo_id), project_id=project_id)
        emitted_s = time.time() - started_wall
        statuses = _deliveries_settled(events, failing_s + 240, worker)
        time.sleep(2)  # a late duplicate, if any, is counted
    finally:
        receiver.decide = None
        receiver.secret = ""
    requests = receiver.snapshot()
    recovered_wall = started_wall + failing_s
    ids_per_event: dict[str, set[str]] = {}
    ok_per_id: Counter[str] = Counter()
    for request in requests:
        photo = (request.payload().get("data") or {}).get("photo") or {}
        ids_per_event.setdefault(photo.get("id", ""), set()).add(request.webhook_id)
        if request.ok:
            ok_per_id[request.webhook_id] += 1
    oks = sorted(request.wall for request in requests if request.ok)
    delivered_events = {
        event for event, hook_ids in ids_per_event.items() if any(ok_per_id[h] for h in hook_ids)
    }
    attempts = Counter(WebhookDelivery.objects.values_list("attempts", flat=True))
    return {
        "events": events,
        "failing_s": failing_s,
        "retry_schedule_s": schedule,
        "worker": worker.name.rsplit("-", 1)[-1],
        "emitted_s": round(emitted_s, 2),
        "statuses": statuses,
        "requests": len(requests),
        "answered_500": sum(request.status == 500 for request in requests),
        "bad_signatures": sum(request.verified is False for request in requests),
        "events_delivered": len(delivered_events & set(ids)),
        "events_with_two_ids": sum(len(hook_ids) > 1 for hook_ids in ids_per_event.values()),
        "max_ids_per_event": max((len(v) for v in ids_per_event.values()), default=0),
        "duplicates_same_id": sum(n - 1 for n in ok_per_id.values()),
        "attempts_per_delivery": {str(k): v for k, v in sorted(attempts.items())},
        "recovery_to_first_2xx_s": round(oks[0] - recovered_wall, 2) if oks else None,
        "recovery_to_last_2xx_s": round(oks[-1] - recovered_wall, 2) if oks else None,
        "first_to_last_2xx_s": round(oks[-1] - oks[0], 2) if oks else None,
        "last_2xx_after_start_s": round(oks[-1] - started_wall, 2) if oks else None,
        "started_at": datetime.fromtimestamp(started_wall).isoformat(timespec="seconds"),
    }
