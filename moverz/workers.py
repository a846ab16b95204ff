"""Workers as the broker sees them: the heartbeats every worker writes to Redis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from moverz.broker import broker_redis


@dataclass(frozen=True)
class WorkerBeat:
    worker_id: str
    last_seen: datetime
    age_s: float
    alive: bool


def worker_heartbeats() -> list[WorkerBeat]:
    """Every worker with a heartbeat on record, newest first. A worker silent for longer than
    the heartbeat timeout is dead: its messages go back to their queues."""
    client = broker_redis()
    now_ms = datetime.now(tz=UTC).timestamp() * 1000
    beats = client.zrevrange(
        f"{settings.DRAMATIQ_NAMESPACE}:__heartbeats__", 0, 199, withscores=True
    )
    workers = []
    for member, score in beats:
        age_ms = max(now_ms - score, 0.0)
        workers.append(
            WorkerBeat(
                worker_id=member.decode() if isinstance(member, bytes) else member,
                last_seen=datetime.fromtimestamp(score / 1000, tz=UTC),
                age_s=round(age_ms / 1000, 1),
                alive=age_ms < settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS,
            )
        )
    return workers
