"""`manage.py worker_health`: 0 while this host's worker processes publish their state and their
consumers keep asking for messages, 1 once either stops for WORKER_HEALTH_STALE_S."""

from __future__ import annotations

import io
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command

from infra.broker import PHOTO_QUEUE, heartbeats_key
from operations.workers import worker_register
from tests.processes import Worker, poll

STALE_S = 3


def health(**options: Any) -> tuple[int, str]:
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("worker_health", stdout=out, **options)
    code = exited.value.code
    assert isinstance(code, int)
    return code, out.getvalue().strip()


@pytest.fixture(autouse=True)
def _short_bound(settings: Any) -> None:
    settings.WORKER_HEALTH_STALE_S = STALE_S


def test_no_worker_registered_from_this_host_is_unhealthy(redis_client: Any) -> None:
    code, line = health()
    assert code == 1
    assert line.startswith("unhealthy: no worker process registered from ")


def _beat(redis_client: Any, worker_id: str, *, seconds_ago: float = 0) -> None:
    """A broker heartbeat, as Dramatiq writes it (ms timestamps in a sorted set)."""
    redis_client.zadd(heartbeats_key(), {worker_id: (time.time() - seconds_ago) * 1000})


def test_a_consumer_that_stopped_fetching_is_unhealthy(redis_client: Any) -> None:
    now_ms = time.time() * 1000
    _beat(redis_client, "w-fetching")
    worker_register(broker_id="w-fetching", threads=2, fetched_ms={PHOTO_QUEUE: now_ms - 100})
    assert health() == (
        0,
        f"healthy: 1 worker process(es) on {socket.gethostname()}, within {STALE_S} s",
    )

    worker_register(broker_id="w-fetching", threads=2, fetched_ms={PHOTO_QUEUE: now_ms - 60_000})
    code, line = health()
    assert code == 1
    assert f"consumer of {PHOTO_QUEUE} stopped fetching 60." in line, line


def test_a_worker_the_broker_counts_dead_is_unhealthy(redis_client: Any, settings: Any) -> None:
    worker_register(broker_id="w-silent", threads=2, fetched_ms={PHOTO_QUEUE: time.time() * 1000})
    _beat(redis_client, "w-silent", seconds_ago=settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS / 1000 + 1)
    code, line = health()
    assert code == 1
    assert "no broker heartbeat" in line, line


def test_a_worker_is_chosen_by_its_id(redis_client: Any) -> None:
    now_ms = time.time() * 1000
    _beat(redis_client, "w-ok")
    worker_register(broker_id="w-ok", threads=2, fetched_ms={PHOTO_QUEUE: now_ms})
    assert health(worker_id="w-ok")[0] == 0
    assert health(worker_id="w-other") == (
        1,
        f"unhealthy: no worker process registered from {socket.gethostname()}",
    )


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_is_healthy_wedged_after_sigstop_and_healthy_again_after_sigcont(
    start_worker: Callable[..., Worker],
) -> None:
    worker = start_worker(threads=2, WORKER_HEALTH_STALE_S=str(STALE_S))

    def healthy() -> str | None:
        code, line = health()
        return line if code == 0 else None

    def unhealthy() -> str | None:
        code, line = health()
        return line if code == 1 else None

    assert poll(worker, "the worker healthy", healthy, timeout=60).startswith("healthy: 1 ")
    group = worker.process.pid  # the worker leads its own process group
    os.killpg(group, signal.SIGSTOP)
    try:
        started = time.monotonic()
        line = poll(worker, "the stopped worker unhealthy", unhealthy, timeout=STALE_S + 10)
        assert time.monotonic() - started >= STALE_S - 1.5  # not before the bound (less a beat)
        assert "heartbeat" in line and f"(bound {STALE_S} s)" in line, line
    finally:
        os.killpg(group, signal.SIGCONT)
    assert poll(worker, "the resumed worker healthy", healthy, timeout=STALE_S + 10)
