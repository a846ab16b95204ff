"""The broker's Redis connection, for the few things that share it (queue figures, the breaker)."""

from __future__ import annotations

from typing import Any

import dramatiq


def broker_redis() -> Any:
    """The redis-py client of the configured Dramatiq RedisBroker."""
    return dramatiq.get_broker().client  # type: ignore[attr-defined]
