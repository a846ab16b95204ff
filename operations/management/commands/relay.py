"""`manage.py relay`: the relay as a process of its own (RELAY_IN_WORKER=0 platforms)."""

from __future__ import annotations

import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from operations.relay import relay_loop, relay_once


class Command(BaseCommand):
    help = (
        "Re-send the photo messages, inventory syncs and webhook deliveries that the database "
        "says are owed and Redis does not hold, every RELAY_INTERVAL_S until SIGTERM, or once "
        "with --once. Workers run the same relay as a fork process unless RELAY_IN_WORKER=0."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="One pass, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["once"]:
            photos_sent, syncs_sent, deliveries_sent = relay_once()
            self.stdout.write(
                f"re-sent {photos_sent} photo message(s), {syncs_sent} inventory sync(s) and "
                f"{deliveries_sent} webhook delivery(ies)"
            )
            return
        # Stop at once, between passes or inside one: a re-send cut off after its commit leaves
        # the photo or sync owed, and the next pass (of any relay) sends it after the grace.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        relay_loop()
