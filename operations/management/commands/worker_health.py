"""`manage.py worker_health`: a liveness check for a worker dyno (exit 0 healthy, 1 not)."""

from __future__ import annotations

import socket
import sys
from typing import Any, NoReturn

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from redis.exceptions import RedisError

from operations.worker_health import worker_health


class Command(BaseCommand):
    help = (
        "Exit 0 if every worker process registered from this host (or the one given) has "
        "published its state and had its consumers ask for messages within "
        "WORKER_HEALTH_STALE_S, else 1; prints one line saying why."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="", help="Another host's workers (default: this).")
        parser.add_argument("--worker-id", default="", help="One worker process, by broker id.")
        parser.add_argument("--pid", type=int, default=None, help="One worker process, by PID.")

    def handle(self, *args: Any, **options: Any) -> None:
        host = options["host"] or socket.gethostname()
        try:
            checks = worker_health(host=host, worker_id=options["worker_id"], pid=options["pid"])
        except (RedisError, OSError) as exc:
            self._exit(1, f"unhealthy: cannot read the worker registry from Redis: {exc}")
        if not checks:
            self._exit(1, f"unhealthy: no worker process registered from {host}")
        sick = [check for check in checks if not check.healthy]
        if sick:
            self._exit(1, f"unhealthy: {sick[0].reason}")
        self._exit(
            0,
            f"healthy: {len(checks)} worker process(es) on {host}, within "
            f"{settings.WORKER_HEALTH_STALE_S:g} s",
        )

    def _exit(self, code: int, line: str) -> NoReturn:
        self.stdout.write(line)  # one line on stdout either way: what a probe's log keeps
        sys.exit(code)
