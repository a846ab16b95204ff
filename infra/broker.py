"""Our Dramatiq Redis broker, and everything we rely on that Dramatiq does not promise.

This module is the checklist for a dramatiq upgrade: every use of a private name of dramatiq (the
Redis consumer class, `MAINTENANCE_SCALE`, the broker's `broker_id`, the `Worker`'s prefetch and
timeout attributes, when its consumers are created and that each consumer thread keeps its broker
consumer in `.consumer`) and every key of its Redis layout (read
from `dramatiq/brokers/redis/dispatch.lua`) is written here and nowhere else:

    <ns>:<queue>                  list of the ids of messages ready to fetch
    <ns>:<queue>.msgs             hash id -> body, from enqueue until ack (waiting or held)
    <ns>:<queue>.DQ, .DQ.msgs     the same for the queue's delay queue
    <ns>:<queue>.XQ, .XQ.msgs     dead letters: sorted set id -> time of death (ms), and bodies
    <ns>:__acks__.<broker>.<q>    set of the ids a worker process holds (fetched, not acked)
    <ns>:__heartbeats__           sorted set broker id -> last heartbeat (ms)

Everything else uses the names below; our own keys (`<ns>:moverz:...`) live with their owners.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, NamedTuple, TypedDict

import dramatiq
import redis
from django.conf import settings
from dramatiq.brokers import redis as dramatiq_redis

PHOTO_QUEUE = "photo-analyze"
#: High-priority projects' photos: the same work, drained first (photos/tasks.py).
PHOTO_HIGH_QUEUE = "photo-analyze-high"
PHOTO_QUEUES = (PHOTO_HIGH_QUEUE, PHOTO_QUEUE)
INVENTORY_QUEUE = "inventory-sync"
#: Its own queue, so a slow or dead receiver never delays photo analysis or inventory syncs.
WEBHOOK_QUEUE = "webhook-deliver"
QUEUES = (PHOTO_HIGH_QUEUE, PHOTO_QUEUE, INVENTORY_QUEUE, WEBHOOK_QUEUE)


class _Consumer(dramatiq_redis._RedisConsumer):
    """Dramatiq's Redis consumer, woken by an ack when it holds all the messages it may.

    Upstream, a consumer whose prefetch is used up (every worker thread busy) goes down the same
    path as one whose queue is empty: it sleeps with a backoff that doubles up to the worker
    timeout, and only then looks again. A worker thread that finishes therefore waits for the
    consumer's sleep to end before its next message is fetched, a loss that grows with the
    number of threads. Here, at full prefetch, the consumer waits for an ack or a nack instead,
    and does not count it as an idle miss; an empty queue still backs off as upstream.
    """

    def __init__(self, broker: Any, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        self._slot_freed = threading.Event()
        #: When the consumer thread last asked for a message (ms): at most an idle timeout
        #: apart while it runs, busy or idle, so a stale one means it stopped (worker_health).
        self.last_fetch_ms = time.time() * 1000

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
        self.last_fetch_ms = time.time() * 1000
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


class WorkerTuning(dramatiq.Middleware):
    """Gives each worker process the prefetch and idle timeout of the settings
    (WORKER_PREFETCH_PER_THREAD, WORKER_IDLE_TIMEOUT_MS) instead of Dramatiq's environment
    variables (`dramatiq_queue_prefetch`, `dramatiq_worker_timeout`; defaults 2 per thread and
    1 s), so a plain `rundramatiq` runs as it should.

    `Worker.start` emits `before_worker_boot`, then adds the middleware that creates a consumer per
    declared queue from `worker.queue_prefetch` and `worker.worker_timeout`, then the threads:
    values set here are the ones they use.
    """

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        worker.queue_prefetch = settings.WORKER_PREFETCH_PER_THREAD * worker.worker_threads
        worker.worker_timeout = settings.WORKER_IDLE_TIMEOUT_MS


def worker_tuning(worker: Any) -> dict[str, int]:
    """What a booted worker's consumers of ready messages run with: prefetch and idle timeout
    (ms); empty before its consumers exist."""
    consumers = [
        consumer for name, consumer in worker.consumers.items() if not name.endswith(".DQ")
    ]
    if not consumers:
        return {}
    return {
        "prefetch": max(consumer.prefetch for consumer in consumers),
        "idle_timeout_ms": max(consumer.worker_timeout for consumer in consumers),
    }


def consumers_last_fetch_ms(worker: Any) -> dict[str, float]:
    """When each running consumer of a booted worker (its queues and their delay queues) last
    asked the broker for a message, in ms; a consumer thread not started yet is left out."""
    fetched: dict[str, float] = {}
    for name, thread in list(worker.consumers.items()):
        last = getattr(getattr(thread, "consumer", None), "last_fetch_ms", None)
        if last is not None:
            fetched[name] = float(last)
    return fetched


def broker_redis() -> Any:
    """The redis-py client of the configured Dramatiq RedisBroker."""
    return dramatiq.get_broker().client  # type: ignore[attr-defined]


# --- Keys -----------------------------------------------------------------------------------


class QueueKeys(NamedTuple):
    """The Redis keys of one queue (see the module docstring)."""

    waiting: str
    messages: str
    delayed: str
    delayed_messages: str
    dead: str
    dead_messages: str


def queue_keys(queue: str, *, namespace: str | None = None) -> QueueKeys:
    base = f"{namespace or settings.DRAMATIQ_NAMESPACE}:{queue}"
    return QueueKeys(
        base, f"{base}.msgs", f"{base}.DQ", f"{base}.DQ.msgs", f"{base}.XQ", f"{base}.XQ.msgs"
    )


def heartbeats_key(*, namespace: str | None = None) -> str:
    return f"{namespace or settings.DRAMATIQ_NAMESPACE}:__heartbeats__"


def _acks_prefix(namespace: str | None = None) -> str:
    return f"{namespace or settings.DRAMATIQ_NAMESPACE}:__acks__."


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _first_args(bodies: Any) -> set[str]:
    """The first argument (an id) of each message body."""
    ids: set[str] = set()
    for body in bodies:
        if not body:
            continue
        try:
            args = json.loads(body).get("args") or []
        except ValueError:
            continue
        if args:
            ids.add(str(args[0]))
    return ids


# --- Workers and their heartbeats -----------------------------------------------------------


def current_worker_id(broker: dramatiq.Broker | None = None) -> str:
    """This process's id (or `broker`'s) as the broker's heartbeats know it; empty when it is
    not a Redis broker."""
    return str(getattr(broker or dramatiq.get_broker(), "broker_id", ""))


def heartbeats(client: Any, limit: int = 200, *, namespace: str | None = None) -> list[Any]:
    """(broker id, last heartbeat in ms) of every process that talks to the broker, newest first.

    Any broker call writes one, so web processes (which only send) and relays beat too."""
    beats = client.zrevrange(heartbeats_key(namespace=namespace), 0, limit - 1, withscores=True)
    return [(_text(member), float(score)) for member, score in beats]


def alive_workers(client: Any) -> set[str]:
    """Processes whose last heartbeat is within the broker's heartbeat timeout."""
    now_ms = time.time() * 1000
    beats = client.zrangebyscore(
        heartbeats_key(), now_ms - settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS, "+inf"
    )
    return {_text(beat) for beat in beats}


def worker_alive(owner: str) -> bool:
    """Has the process `owner` sent a heartbeat within the broker's heartbeat timeout?"""
    if not owner:
        return False
    beat = broker_redis().zscore(heartbeats_key(), owner)
    if beat is None:
        return False
    return time.time() * 1000 - float(beat) < settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS


def held_message_ids(
    client: Any, *, broker_id: str, queue: str, namespace: str | None = None
) -> set[str]:
    """First arguments of the messages of `queue` (and its delay queue) that the worker process
    `broker_id` has fetched and not acked: running, prefetched or waiting for their ETA."""
    keys = queue_keys(queue, namespace=namespace)
    held: set[str] = set()
    for name, bodies_key in ((queue, keys.messages), (f"{queue}.DQ", keys.delayed_messages)):
        ids = client.smembers(f"{_acks_prefix(namespace)}{broker_id}.{name}")
        if ids:
            held |= _first_args(client.hmget(bodies_key, list(ids)))
    return held


# --- Queues ---------------------------------------------------------------------------------


class QueueCounts(TypedDict):
    waiting: int
    delayed: int
    active: int
    dead: int


def queue_counts(client: Any, queues: tuple[str, ...] = QUEUES) -> dict[str, QueueCounts]:
    """Messages per queue: waiting (ready), delayed (in the delay queue or held by a worker until
    their ETA), active (held by a worker: running or prefetched), dead (dead letters)."""
    ack_keys = [_text(key) for key in client.scan_iter(match=f"{_acks_prefix()}*", count=1000)]
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        keys = queue_keys(queue)
        pipe.llen(keys.waiting)
        pipe.llen(keys.delayed)
        pipe.zcard(keys.dead)
    for key in ack_keys:
        pipe.scard(key)
    results = pipe.execute()
    held = dict(zip(ack_keys, results[3 * len(queues) :], strict=True))
    counts: dict[str, QueueCounts] = {}
    for index, queue in enumerate(queues):
        waiting, delayed, dead = results[3 * index : 3 * index + 3]
        active = sum(n for key, n in held.items() if key.endswith(f".{queue}"))
        delayed += sum(n for key, n in held.items() if key.endswith(f".{queue}.DQ"))
        counts[queue] = QueueCounts(waiting=waiting, delayed=delayed, active=active, dead=dead)
    return counts


#: How many messages from the head of a queue's list are read to find its oldest: the list is
#: filled at its tail (enqueue, and requeue after a dead worker) and taken from its head, so the
#: oldest is at or near the head.
OLDEST_WINDOW = 10


def oldest_waiting_ms(client: Any, queues: tuple[str, ...] = QUEUES) -> dict[str, float | None]:
    """Per queue, the `message_timestamp` (ms) of the oldest message ready to fetch, None when
    none waits. Dramatiq sets it when the message is first built: a message that came back from
    the delay queue (a retry, a coalesced sync) counts from its first enqueue."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.lrange(queue_keys(queue).waiting, 0, OLDEST_WINDOW - 1)
    heads = pipe.execute()
    for queue, ids in zip(queues, heads, strict=True):
        pipe.hmget(queue_keys(queue).messages, ids or ["-"])
    bodies = pipe.execute()
    oldest: dict[str, float | None] = {}
    for queue, ids, found in zip(queues, heads, bodies, strict=True):
        stamps = []
        for body in found if ids else []:
            if not body:
                continue  # acked between the two reads
            try:
                stamps.append(float(json.loads(body)["message_timestamp"]))
            except (ValueError, KeyError, TypeError):
                continue
        oldest[queue] = min(stamps) if stamps else None
    return oldest


def live_message_ids(client: Any, queue: str, *, namespace: str | None = None) -> set[str]:
    """The first argument (an id) of every live message of `queue`: waiting, delayed or in flight.

    A message stays in its queue's `.msgs` hash from enqueue until it is acked, whether it waits in
    the list or a worker holds it, so the queue's and its delay queue's hashes cover every one.
    """
    keys = queue_keys(queue, namespace=namespace)
    ids: set[str] = set()
    for key in (keys.messages, keys.delayed_messages):
        ids |= _first_args(body for _, body in client.hscan_iter(key, count=1000))
    return ids


_sweepers: dict[int, Any] = {}


def broker_sweep(client: Any, queues: tuple[str, ...] = QUEUES) -> None:
    """Hand the messages of dead workers (no heartbeat for DRAMATIQ_HEARTBEAT_TIMEOUT_MS) back to
    their queues now.

    Dramatiq does this only in its "maintenance", which runs on a random
    DRAMATIQ_MAINTENANCE_CHANCE per million broker calls and sweeps only the queue of that call:
    after a kill -9 an idle queue waited minutes (the fault suite saw photos still stranded 80 s
    later). Until then those messages still count as live, so the relay would not re-send them
    either. A forced sweep of every queue on each pass bounds the wait to the heartbeat timeout
    plus one relay interval.
    """
    sweeper = _sweepers.get(id(client))
    if sweeper is None:
        # A broker object of its own, never consuming, whose every call runs the maintenance.
        sweeper = _sweepers[id(client)] = dramatiq_redis.RedisBroker(
            client=client,
            namespace=settings.DRAMATIQ_NAMESPACE,
            heartbeat_timeout=settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=dramatiq_redis.MAINTENANCE_SCALE,
            middleware=[],
        )
    for queue in queues:
        for name in (queue, f"{queue}.DQ"):
            sweeper.do_qsize(name)  # a read-only command: the maintenance runs before it


# --- Dead letters ---------------------------------------------------------------------------


class DeadMessage(NamedTuple):
    redis_id: str
    died_at_ms: float
    body: bytes | str


def dead_messages(client: Any, queue: str, limit: int = 100) -> list[DeadMessage]:
    """The newest dead letters of `queue` (Dramatiq's encoded message bodies)."""
    keys = queue_keys(queue)
    entries = client.zrevrange(keys.dead, 0, limit - 1, withscores=True)
    if not entries:
        return []
    bodies = client.hmget(keys.dead_messages, [member for member, _ in entries])
    return [
        DeadMessage(_text(member), float(score), body)
        for (member, score), body in zip(entries, bodies, strict=True)
        if body is not None
    ]


def dead_message_body(client: Any, queue: str, redis_id: str) -> bytes | None:
    body: bytes | None = client.hget(queue_keys(queue).dead_messages, redis_id)
    return body


def dead_messages_delete(client: Any, queue: str, redis_ids: list[str] | None = None) -> int:
    """Delete the given dead letters, or every one of the queue's when `redis_ids` is None."""
    keys = queue_keys(queue)
    if redis_ids is None:
        count = int(client.zcard(keys.dead))
        client.delete(keys.dead, keys.dead_messages)
        return count
    pipe = client.pipeline()
    for redis_id in redis_ids:
        pipe.zrem(keys.dead, redis_id)
        pipe.hdel(keys.dead_messages, redis_id)
    return int(sum(pipe.execute()[0::2]))
