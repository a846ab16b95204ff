"""Our Dramatiq Redis broker, and its Redis connection for the few things that share it (queue
figures, the breaker)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import dramatiq
import redis
from django.conf import settings
from dramatiq.brokers import redis as dramatiq_redis


class _Consumer(dramatiq_redis._RedisConsumer):
    """Dramatiq's Redis consumer, woken by an ack when it holds all the messages it may.

    Upstream, a consumer whose prefetch is used up (every worker thread busy) goes down the same
    path as one whose queue is empty: it sleeps with a backoff that doubles up to the worker
    timeout, and only then looks again. A worker thread that finishes therefore waits for the
    consumer's sleep to end (on average ~95 ms with our 250 ms timeout) before its next message
    is fetched: at 1 s of provider latency that was 8-12 % of the throughput (docs/benchmarks.md,
    change 11). Here, at full prefetch, the consumer waits for an ack or a nack instead, and does
    not count it as an idle miss; an empty queue still backs off as upstream.
    """

    def __init__(self, broker: Any, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        self._slot_freed = threading.Event()

    def ack(self, message: Any) -> None:
        try:
            super().ack(message)
        finally:
            self._slot_freed.set()

    def nack(self, message: Any) -> None:
        try:
            super().nack(message)
        finally:
            self._slot_freed.set()

    def __next__(self) -> Any:
        if not self.message_cache and self.outstanding_message_count >= self.prefetch:
            # Cleared before the count is read again: an ack in between sets it after.
            self._slot_freed.clear()
            if self.outstanding_message_count >= self.prefetch:
                self._slot_freed.wait(self.timeout / 1000)
            return None  # the worker's consumer thread does its chores and asks again
        return super().__next__()


#: redis-py 8 speaks RESP3 by default, and then opens every connection with a handshake for
#: Redis Enterprise's maintenance notifications (`CLIENT MAINT_NOTIFICATIONS`, which Redis 7
#: refuses). Under load that handshake twice crashed a web request, raising what redis-py never
#: raises otherwise (`ValueError: I/O operation on closed file`, then `AttributeError: 'NoneType'
#: object has no attribute 'readline'`, both from `_enable_maintenance_notifications`). RESP2, what
#: Dramatiq was written for, skips it, and a round trip per new connection with it.
REDIS_PROTOCOL = 2


class RedisBroker(dramatiq_redis.RedisBroker):
    """Dramatiq's RedisBroker with the consumer above, over RESP2 (settings.DRAMATIQ_BROKER)."""

    def __init__(self, *, url: str | None = None, **parameters: Any) -> None:
        if url:
            parameters["connection_pool"] = redis.ConnectionPool.from_url(
                url, protocol=REDIS_PROTOCOL
            )
        super().__init__(**parameters)

    @property
    def consumer_class(self) -> type[_Consumer]:
        return _Consumer


def broker_redis() -> Any:
    """The redis-py client of the configured Dramatiq RedisBroker."""
    return dramatiq.get_broker().client  # type: ignore[attr-defined]


def live_message_ids(client: Any, queue: str) -> set[str]:
    """The first argument (an id) of every live message of `queue`: waiting, delayed or in flight.

    A message stays in its queue's `.msgs` hash from enqueue until it is acked, whether it waits in
    the list or a worker holds it, so the queue's and its delay queue's hashes cover every one.
    """
    ns = settings.DRAMATIQ_NAMESPACE
    ids: set[str] = set()
    for key in (f"{ns}:{queue}.msgs", f"{ns}:{queue}.DQ.msgs"):
        for _, body in client.hscan_iter(key, count=1000):
            try:
                args = json.loads(body).get("args") or []
            except ValueError:
                continue
            if args:
                ids.add(str(args[0]))
    return ids


def current_worker_id() -> str:
    """This process's id as the broker's heartbeats know it."""
    return str(getattr(dramatiq.get_broker(), "broker_id", ""))


def worker_alive(owner: str) -> bool:
    """Has the worker `owner` sent a heartbeat within the broker's heartbeat timeout?"""
    if not owner:
        return False
    beat = broker_redis().zscore(f"{settings.DRAMATIQ_NAMESPACE}:__heartbeats__", owner)
    if beat is None:
        return False
    age_ms = time.time() * 1000 - float(beat)
    return age_ms < settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS


def alive_workers(client: Any) -> set[str]:
    """Workers whose last heartbeat is within the broker's heartbeat timeout."""
    now_ms = time.time() * 1000
    beats = client.zrangebyscore(
        f"{settings.DRAMATIQ_NAMESPACE}:__heartbeats__",
        now_ms - settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS,
        "+inf",
    )
    return {beat.decode() if isinstance(beat, bytes) else beat for beat in beats}
