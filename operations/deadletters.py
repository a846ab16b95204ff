"""Dead-lettered messages: list, replay, purge (read and deleted through infra.broker)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.message import Message

from infra.broker import broker_redis, dead_message_body, dead_messages, dead_messages_delete


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    redis_id: str
    actor: str
    args: list[Any]
    died_at: datetime
    error: str


def dead_letters(*, queue: str, limit: int = 100) -> list[DeadLetter]:
    """The newest dead-lettered messages of `queue`."""
    letters = []
    for dead in dead_messages(broker_redis(), queue, limit):
        data = json.loads(dead.body)
        options = data.get("options") or {}
        traceback = options.get("traceback") or ""
        letters.append(
            DeadLetter(
                queue=queue,
                redis_id=dead.redis_id,
                actor=data.get("actor_name", ""),
                args=data.get("args") or [],
                died_at=datetime.fromtimestamp(dead.died_at_ms / 1000, tz=UTC),
                error=traceback.strip().splitlines()[-1][:300] if traceback else "",
            )
        )
    return letters


def dead_letter_replay(*, queue: str, redis_ids: list[str]) -> int:
    """Send the messages again (with a fresh retry budget) and drop them from the dead letters."""
    client = broker_redis()
    broker = dramatiq.get_broker()
    replayed = 0
    for redis_id in redis_ids:
        body = dead_message_body(client, queue, redis_id)
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
        dead_messages_delete(client, queue, [redis_id])
        replayed += 1
    return replayed


def dead_letter_purge(*, queue: str, redis_ids: list[str] | None = None) -> int:
    """Delete the given dead letters, or all of the queue's when `redis_ids` is None."""
    return dead_messages_delete(broker_redis(), queue, redis_ids)
