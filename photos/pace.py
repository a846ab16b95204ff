"""When a client polling an unfinished photo should look again (the API's `Retry-After`), from
the queue's current pace: read at most once per POLL_PACE_TTL_S per process, never per poll."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.utils import timezone

from aimetrics.models import AiMetric
from infra.broker import PHOTO_QUEUES, broker_redis, queue_counts
from photos.models import Photo

MIN_S, MAX_S = 1, 30


@dataclass(frozen=True)
class Pace:
    waiting: int  # messages waiting in the photo queues
    done_per_s: float  # successful analyses over the last minute
    call_s: float  # median of the last successful provider calls


_lock = threading.Lock()
_cached: tuple[float, Pace] | None = None


def poll_after_s(photo: Photo) -> int | None:
    """Seconds until a poll of `photo` is worth it; None when waiting changes nothing."""
    if photo.status != Photo.Status.PROCESSING and photo.queued_at is None:
        return None  # finished, or uploaded and never enqueued: nothing will happen by waiting
    pace = _pace()
    if photo.status == Photo.Status.PROCESSING:
        wait = pace.call_s
    else:  # waiting its turn: the photos ahead at the current pace, then its own call
        wait = pace.waiting / max(pace.done_per_s, 0.1) + pace.call_s
    return max(MIN_S, min(MAX_S, math.ceil(wait)))


def _pace() -> Pace:
    global _cached
    now = time.monotonic()
    with _lock:
        if _cached is None or now - _cached[0] >= settings.POLL_PACE_TTL_S:
            _cached = (now, _read())
        return _cached[1]


def _read() -> Pace:
    """Three cheap reads: the queue's length (Redis), the last minute's analyses and the last
    hundred calls' latencies (AiMetric, by its indexes)."""
    try:
        counts = queue_counts(broker_redis(), PHOTO_QUEUES)
        waiting = sum(counts[queue]["waiting"] for queue in PHOTO_QUEUES)
    except redis.RedisError:
        waiting = 0  # the answer is a hint: without Redis, the calls' pace alone
    since = timezone.now() - timedelta(minutes=1)
    successes = AiMetric.objects.filter(success=True, operation="analyze_photo")
    done = successes.filter(created_at__gte=since).count()
    latencies = sorted(successes.order_by("-id").values_list("latency_ms", flat=True)[:101])
    median_ms = latencies[len(latencies) // 2] if latencies else 3000
    return Pace(waiting=waiting, done_per_s=done / 60, call_s=median_ms / 1000)
