"""A plain `manage.py rundramatiq` is a whole worker dyno: its relay fork, prefetch, idle timeout
and shutdown timeout come from the settings, not from flags and environment variables."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from django.conf import settings
from django.core.management import call_command, get_commands
from django.utils import timezone
from dramatiq.brokers.stub import StubBroker

from infra.broker import WorkerTuning, worker_tuning
from operations.relay import RelayInWorker, relay_forever
from operations.workers import worker_heartbeats
from photos.models import Photo
from tests.factories import make_photo
from tests.processes import Worker, poll

RELAY = "operations.relay:relay_forever"


def _dramatiq_argv(monkeypatch: pytest.MonkeyPatch, *args: str) -> list[str]:
    """The command line `manage.py rundramatiq *args` hands to dramatiq (its exec is the
    process boundary, caught here)."""
    execs: list[list[str]] = []
    monkeypatch.setattr(os, "execvp", lambda path, argv: execs.append(argv))
    call_command("rundramatiq", *args, stdout=io.StringIO())
    [argv] = execs
    return argv


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_our_rundramatiq_replaces_django_dramatiqs() -> None:
    assert get_commands()["rundramatiq"] == "operations"


def test_plain_rundramatiq_takes_processes_threads_and_shutdown_timeout_from_settings(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.WORKER_PROCESSES, settings.WORKER_THREADS = 3, 5
    settings.WORKER_SHUTDOWN_TIMEOUT_MS = 123_000

    argv = _dramatiq_argv(monkeypatch)

    assert _flag(argv, "--processes") == "3"
    assert _flag(argv, "--threads") == "5"
    assert _flag(argv, "--worker-shutdown-timeout") == "123000"
    assert "--fork-function" not in argv  # the relay comes from the middleware


def test_shutdown_timeout_default_is_above_the_actors_time_limit() -> None:
    assert settings.WORKER_SHUTDOWN_TIMEOUT_MS > settings.PHOTO_LEASE_SECONDS * 1000


def test_flags_still_win_and_an_old_relay_fork_flag_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = _dramatiq_argv(
        monkeypatch, "--processes", "1", "--threads", "2", "--fork-function", RELAY
    )

    assert (_flag(argv, "--processes"), _flag(argv, "--threads")) == ("1", "2")
    assert "--fork-function" not in argv  # else the dyno would run two relays


def test_the_relay_is_a_fork_of_the_worker_unless_turned_off(settings: Any) -> None:
    assert RelayInWorker().forks == [relay_forever]
    settings.RELAY_IN_WORKER = False
    assert RelayInWorker().forks == []


def test_worker_consumers_get_the_prefetch_and_idle_timeout_of_the_settings(
    settings: Any,
) -> None:
    """Against a real dramatiq Worker: what an upgrade of dramatiq must keep true."""
    settings.WORKER_PREFETCH_PER_THREAD = 1
    settings.WORKER_IDLE_TIMEOUT_MS = 250
    broker = StubBroker(middleware=[WorkerTuning()])
    broker.declare_queue("some-queue")
    worker = dramatiq.Worker(broker, worker_threads=3)
    worker.start()
    try:
        assert worker_tuning(worker) == {"prefetch": 3, "idle_timeout_ms": 250}
    finally:
        worker.stop()
        broker.close()


@pytest.mark.django_db
def test_relay_command_once(redis_client: Any) -> None:
    owed = make_photo()
    Photo.objects.filter(pk=owed.pk).update(queued_at=timezone.now() - timedelta(minutes=1))
    out = io.StringIO()

    call_command("relay", "--once", stdout=out)

    assert out.getvalue().strip() == (
        "re-sent 1 photo message(s), 0 inventory sync(s) and 0 webhook delivery(ies)"
    )


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_plain_rundramatiq_relays_a_lost_message_and_runs_as_the_settings_say(
    start_worker: Callable[..., Worker],
) -> None:
    """A photo owed a message that Redis does not hold (lost with it) is finished by a worker
    started with nothing but --processes and --threads: its relay fork re-sends it."""
    photo = make_photo()  # committed, PENDING, with no message anywhere
    Photo.objects.filter(pk=photo.pk).update(queued_at=timezone.now() - timedelta(minutes=1))

    worker = start_worker(threads=2, RELAY_INTERVAL_S="0.5", PHOTO_RELAY_GRACE_SECONDS="1")

    def done() -> Photo | None:
        return Photo.objects.filter(pk=photo.pk, status=Photo.Status.DONE).first()

    assert poll(worker, "the lost photo relayed and DONE", done, timeout=60).attempts == 1
    log = worker.log_path.read_text()
    assert log.count(f"Fork process {RELAY!r} is ready for action") == 1
    [argv] = re.findall(r'Running dramatiq: "([^"]*)"', log)
    assert "--fork-function" not in argv.split()
    assert _flag(argv.split(), "--worker-shutdown-timeout") == str(
        settings.WORKER_SHUTDOWN_TIMEOUT_MS
    )
    [registered] = [beat for beat in worker_heartbeats() if beat.is_worker]
    assert (registered.threads, registered.prefetch, registered.idle_timeout_ms) == (
        2,
        2 * settings.WORKER_PREFETCH_PER_THREAD,
        settings.WORKER_IDLE_TIMEOUT_MS,
    )
