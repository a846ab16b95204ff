"""Dramatiq middleware: a worker process builds its AI engine when it boots."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq

logger = logging.getLogger(__name__)


class WarmAiEngine(dramatiq.Middleware):
    """Builds the configured AI engine (and imports its provider SDKs) as soon as a worker
    process has booted, instead of inside its first messages: that import takes seconds on a busy
    machine, and every thread of a fresh process would wait on the import lock meanwhile. Web
    processes never call this hook."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        from ai_engine.registry import engine_from_settings
        from infra.broker import broker_redis

        try:
            engine_from_settings(redis_client=broker_redis())
        except Exception:  # a misconfigured provider fails the messages, with their error
            logger.exception("could not build the AI engine at worker boot")
