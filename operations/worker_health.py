"""Liveness of the worker processes of one host, for an orchestrator (`manage.py worker_health`).

A worker process writes its registry entry (operations.workers) every third of
WORKER_HEALTH_STALE_S from a thread of its own, with when each of its consumer threads last asked
the broker for a message. A consumer asks at least once per idle timeout whether its queue is empty
or every worker thread is busy, so a fetch older than the bound means the consumer stopped, and an
entry older than the bound means the process is wedged (stopped, deadlocked, starved of CPU).

Dramatiq's own heartbeat (`<ns>:__heartbeats__`) is checked too, since past
DRAMATIQ_HEARTBEAT_TIMEOUT_MS the broker hands the process's messages to others; but any broker
call of the process writes it (a worker thread's ack, a delay-queue consumer's fetch), so alone it
cannot say that each consumer still fetches.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from infra.broker import worker_alive
from operations.workers import worker_entries


@dataclass(frozen=True)
class WorkerHealth:
    worker_id: str
    pid: int | None
    healthy: bool
    reason: str


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check(worker_id: str, entry: dict[str, Any], now_ms: float, bound_s: float) -> WorkerHealth:
    pid = entry.get("pid")
    name = f"worker {worker_id} (pid {pid})"
    seen_s = (now_ms - entry.get("seen_ms", 0)) / 1000
    if seen_s > bound_s:
        return WorkerHealth(
            worker_id, pid, False, f"{name}: heartbeat {seen_s:.1f} s old (bound {bound_s:g} s)"
        )
    if not worker_alive(worker_id):
        return WorkerHealth(
            worker_id, pid, False, f"{name}: no broker heartbeat for the heartbeat timeout"
        )
    fetched: dict[str, float] = entry.get("fetched_ms") or {}
    if not fetched and (now_ms - entry.get("started_ms", 0)) / 1000 > bound_s:
        return WorkerHealth(worker_id, pid, False, f"{name}: no consumer has fetched since boot")
    for queue, last_ms in sorted(fetched.items()):
        # Measured against the entry's own time: what the consumer had done when it was written.
        idle_s = (entry["seen_ms"] - last_ms) / 1000
        if idle_s > bound_s:
            return WorkerHealth(
                worker_id,
                pid,
                False,
                f"{name}: consumer of {queue} stopped fetching {idle_s:.1f} s ago "
                f"(bound {bound_s:g} s)",
            )
    return WorkerHealth(worker_id, pid, True, f"{name}: ok")


def worker_health(
    *, host: str | None = None, worker_id: str = "", pid: int | None = None
) -> list[WorkerHealth]:
    """The health of the worker processes registered from `host` (this one by default), or of
    the one with `worker_id` (its broker id) or `pid`; empty when none is registered.

    On this host, an entry whose process no longer exists is skipped (a crash leaves its entry
    behind until it ages out), and of several entries with one pid (a container restarted with a
    fresh PID namespace) only the newest counts.
    """
    host = host or socket.gethostname()
    local = host == socket.gethostname()
    now_ms = time.time() * 1000
    bound_s = settings.WORKER_HEALTH_STALE_S
    newest: dict[Any, tuple[str, dict[str, Any]]] = {}
    for broker_id, entry in worker_entries().items():
        if worker_id and broker_id != worker_id:
            continue
        if not worker_id and entry.get("host") != host:
            continue
        if pid is not None and entry.get("pid") != pid:
            continue
        if local and isinstance(entry.get("pid"), int) and not _pid_running(entry["pid"]):
            continue
        key = (entry.get("host"), entry.get("pid"))
        if key not in newest or entry.get("seen_ms", 0) > newest[key][1].get("seen_ms", 0):
            newest[key] = (broker_id, entry)
    return [_check(broker_id, entry, now_ms, bound_s) for broker_id, entry in newest.values()]
