"""`manage.py rundramatiq`: django_dramatiq's command, with our defaults from the settings.

Listed before `django_dramatiq` in INSTALLED_APPS, this app's command is the one Django runs.
The rest of what a safe worker needs comes from middleware (settings.DRAMATIQ_BROKER): the
relay fork (`operations.relay.RelayInWorker`) and the prefetch and idle timeout
(`infra.broker.WorkerTuning`). So the plain command is the whole worker dyno.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django_dramatiq.management.commands.rundramatiq import Command as DramatiqCommand

from operations.relay import relay_forever

RELAY = f"{relay_forever.__module__}:{relay_forever.__name__}"


class Command(DramatiqCommand):
    help = (
        "Run Dramatiq worker processes with the relay as a fork process. Processes, threads and "
        "the shutdown timeout default to WORKER_PROCESSES, WORKER_THREADS and "
        "WORKER_SHUTDOWN_TIMEOUT_MS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(
            processes=settings.WORKER_PROCESSES,
            threads=settings.WORKER_THREADS,
            # Above the actor's time limit, so a SIGTERM lets running analyses finish.
            worker_shutdown_timeout=settings.WORKER_SHUTDOWN_TIMEOUT_MS,
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.RELAY_IN_WORKER and RELAY in options["forks"]:
            # An old command line: the middleware already forks the relay; one is enough.
            self.stdout.write(f" * Ignored --fork-function {RELAY}: RELAY_IN_WORKER forks it\n")
            options["forks"] = [fork for fork in options["forks"] if fork != RELAY]
        super().handle(*args, **options)
