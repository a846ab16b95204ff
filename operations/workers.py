"""Workers as the broker sees them: the heartbeats in Redis, and which of them are workers.

Dramatiq's Redis broker writes a heartbeat for every process that talks to it, a web process
that only sends messages included. Worker processes also register their broker id
(`WorkerRegistry`, a middleware), so the queues page can tell consumers from producers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dramatiq
from django.conf import settings
from redis.exceptions import RedisError

from infra.broker import (
    broker_redis,
    consumers_last_fetch_ms,
    current_worker_id,
    heartbeats,
    worker_tuning,
)

logger = logging.getLogger(__name__)
# A worker writes its entry again this often, so a Redis that restarted empty learns it again.
REGISTER_EVERY_S = 30.0


@dataclass(frozen=True)
class WorkerBeat:
    worker_id: str
    last_seen: datetime
    age_s: float
    alive: bool
    # A registered worker (consumes messages), else a producer (a web process, the relay).
    is_worker: bool = False
    host: str = ""
    pid: int | None = None
    threads: int | None = None
    #: What its consumers fetch ahead and how long they sleep when idle (WorkerTuning).
    prefetch: int | None = None
    idle_timeout_ms: int | None = None


def _registry_key() -> str:
    return f"{settings.DRAMATIQ_NAMESPACE}:moverz:workers"


def worker_register(
    *,
    broker_id: str,
    threads: int,
    fetched_ms: dict[str, float] | None = None,
    started_ms: int | None = None,
    **tuning: int,
) -> None:
    """Record that the broker `broker_id` belongs to a worker process (this one), with its
    threads, `tuning` (prefetch, idle_timeout_ms), when it booted and when each of its consumers
    last asked for a message (`fetched_ms`, read by `worker_health`)."""
    now_ms = int(time.time() * 1000)
    entry = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "threads": threads,
        **tuning,
        "started_ms": started_ms or now_ms,
        "fetched_ms": {queue: int(ms) for queue, ms in (fetched_ms or {}).items()},
        "seen_ms": now_ms,
    }
    broker_redis().hset(_registry_key(), broker_id, json.dumps(entry))


def worker_unregister(*, broker_id: str) -> None:
    broker_redis().hdel(_registry_key(), broker_id)


def worker_entries() -> dict[str, dict[str, Any]]:
    """The registry: broker id -> what the worker process last wrote (see worker_register)."""
    return {
        _text(broker_id): json.loads(entry)
        for broker_id, entry in broker_redis().hgetall(_registry_key()).items()
    }


def worker_heartbeats() -> list[WorkerBeat]:
    """Every process with a heartbeat on record, newest first. A process silent for longer than
    the heartbeat timeout is dead: its messages go back to their queues. Registry entries of
    processes that neither beat nor registered again for that long are removed here."""
    client = broker_redis()
    now_ms = datetime.now(tz=UTC).timestamp() * 1000
    beats = heartbeats(client, 200)
    registry = {
        _text(broker_id): json.loads(entry)
        for broker_id, entry in client.hgetall(_registry_key()).items()
    }
    workers = []
    for worker_id, score in beats:
        age_ms = max(now_ms - score, 0.0)
        entry: dict[str, Any] = registry.get(worker_id, {})
        workers.append(
            WorkerBeat(
                worker_id=worker_id,
                last_seen=datetime.fromtimestamp(score / 1000, tz=UTC),
                age_s=round(age_ms / 1000, 1),
                alive=age_ms < settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS,
                is_worker=bool(entry),
                host=entry.get("host", ""),
                pid=entry.get("pid"),
                threads=entry.get("threads"),
                prefetch=entry.get("prefetch"),
                idle_timeout_ms=entry.get("idle_timeout_ms"),
            )
        )
    beating = {beat.worker_id for beat in workers}
    stale = [
        broker_id
        for broker_id, entry in registry.items()
        if broker_id not in beating
        and now_ms - entry.get("seen_ms", 0) > settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS
    ]
    if stale:
        client.hdel(_registry_key(), *stale)
    return workers


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def register_interval_s() -> float:
    """How often a worker writes its entry: often enough for `worker_health`'s bound."""
    return min(REGISTER_EVERY_S, settings.WORKER_HEALTH_STALE_S / 3)


class WorkerRegistry(dramatiq.Middleware):
    """Registers a worker process's broker id at boot, again every `register_interval_s()` (from
    a daemon thread) with when its consumers last fetched, and removes it at shutdown. Web
    processes never boot a worker."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        broker_id = current_worker_id(broker)
        if not broker_id:  # not a Redis broker
            return
        stop = threading.Event()
        self._stop = stop
        tuning = worker_tuning(worker)
        started_ms = int(time.time() * 1000)
        interval_s = register_interval_s()

        def keep_registered() -> None:
            while True:
                try:
                    worker_register(
                        broker_id=broker_id,
                        threads=worker.worker_threads,
                        fetched_ms=consumers_last_fetch_ms(worker),
                        started_ms=started_ms,
                        **tuning,
                    )
                except (RedisError, OSError) as exc:
                    logger.warning("could not register this worker in Redis: %s", exc)
                if stop.wait(interval_s):
                    return

        threading.Thread(target=keep_registered, name="worker-registry", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        broker_id = current_worker_id(broker)
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        if broker_id:
            # If Redis is away, the page drops the entry once its heartbeat is old.
            with contextlib.suppress(RedisError, OSError):
                worker_unregister(broker_id=broker_id)
