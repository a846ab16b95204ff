"""Dead-lettered messages: list, replay, purge (the broker's `<queue>.XQ` sorted set and hash)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dramatiq
from django.conf import settings
from dramatiq.message import Message

from infra.broker import broker_redis


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    redis_id: str
    actor: str
    args: list[Any]
    died_at: datetime
    error: str


def _keys(queue: str) -> tuple[str, str]:
    ns = settings.DRAMATIQ_NAMESPACE
    return f"{ns}:{queue}.XQ", f"{ns}:{queue}.XQ.msgs"


def dead_letters(*, queue: str, limit: int = 100) -> list[DeadLetter]:
    """The newest dead-lettered messages of `queue`."""
    client = broker_redis()
    zset, bodies = _keys(queue)
    entries = client.zrevrange(zset, 0, limit - 1, withscores=True)
    if not entries:
        return []
    raw = client.hmget(bodies, [member for member, _ in entries])
    letters = []
    for (member, score), body in zip(entries, raw, strict=True):
        if body is None:
            continue
        data = json.loads(body)
        options = data.get("options") or {}
        traceback = options.get("traceback") or ""
        letters.append(
            DeadLetter(
                queue=queue,
                redis_id=member.decode() if isinstance(member, bytes) else member,
                actor=data.get("actor_name", ""),
                args=data.get("args") or [],
                died_at=datetime.fromtimestamp(score / 1000, tz=UTC),
                error=traceback.strip().splitlines()[-1][:300] if traceback else "",
            )
        )
    return letters


def dead_letter_replay(*, queue: str, redis_ids: list[str]) -> int:
    """Send the messages again (with a fresh retry budget) and drop them from the dead letters."""
    client = broker_redis()
    broker = dramatiq.get_broker()
    zset, bodies = _keys(queue)
    replayed = 0
    for redis_id in redis_ids:
        body = client.hget(bodies, redis_id)
        if body is None:
            continue
        old = Message.decode(body)
        broker.enqueue(
            Message(
                queue_name=queue,
                actor_name=old.actor_name,
                args=old.args,
                kwargs=old.kwargs,
                options={},
            )
        )
        pipe = client.pipeline()
        pipe.zrem(zset, redis_id)
        pipe.hdel(bodies, redis_id)
        pipe.execute()
        replayed += 1
    return replayed


def dead_letter_purge(*, queue: str, redis_ids: list[str] | None = None) -> int:
    """Delete the given dead letters, or all of the queue's when `redis_ids` is None."""
    client = broker_redis()
    zset, bodies = _keys(queue)
    if redis_ids is None:
        count = int(client.zcard(zset))
        client.delete(zset, bodies)
        return count
    pipe = client.pipeline()
    for redis_id in redis_ids:
        pipe.zrem(zset, redis_id)
        pipe.hdel(bodies, redis_id)
    results = pipe.execute()
    return sum(results[0::2])
