"""The broker's Redis connection, for the few things that share it (queue figures, the breaker)."""

from __future__ import annotations

import json
from typing import Any

import dramatiq
from django.conf import settings


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
