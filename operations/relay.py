"""The relay: re-sends what the database says is owed and Redis does not hold.

It runs inside every worker dyno as a Dramatiq fork process that the `RelayInWorker` middleware
declares, so a plain `manage.py rundramatiq` has it and it needs no dyno of its own
(RELAY_IN_WORKER=0 turns it off where the relay runs on its own: `manage.py relay`). Two relays at
once never send twice (each send is a compare-and-set in the database). `manage.py requeue_stuck`
does one pass of the photo side by hand.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import dramatiq

logger = logging.getLogger("operations.relay")


def relay_once() -> tuple[int, int, int]:
    """One pass: (photos re-sent, inventory syncs re-sent, webhook deliveries re-sent)."""
    from infra.broker import broker_redis, broker_sweep
    from inventory.relay import inventory_relay
    from photos.services.relay import photos_relay, photos_stuck
    from webhooks.relay import webhooks_relay

    client = broker_redis()
    broker_sweep(client)
    photos_sent, _ = photos_relay(photos=photos_stuck(client=client))
    syncs_sent = inventory_relay(client=client)
    deliveries_sent = webhooks_relay(client=client)
    return photos_sent, syncs_sent, deliveries_sent


def relay_loop() -> None:
    """A pass every RELAY_INTERVAL_S (with jitter, so the relays of several dynos spread out),
    until the process is stopped."""
    from django.conf import settings
    from django.db import close_old_connections

    from aimetrics.rollup import aimetric_rollup

    interval = settings.RELAY_INTERVAL_S
    logger.info("relay started: a pass every %s s", interval)
    while True:
        try:
            photos_sent, syncs_sent, deliveries_sent = relay_once()
            aimetric_rollup()  # the AI figures' hourly sums: a bounded batch, or nothing to do
            if photos_sent or syncs_sent or deliveries_sent:
                logger.warning(
                    "relay re-sent %d photo message(s), %d inventory sync(s) and %d webhook "
                    "delivery(ies)",
                    photos_sent,
                    syncs_sent,
                    deliveries_sent,
                )
        except Exception:  # Redis or the database down: say so, try again next pass
            logger.exception("relay pass failed")
        finally:
            close_old_connections()
        time.sleep(interval * random.uniform(0.8, 1.2))


def relay_forever() -> int:
    """The fork process: set Django up, then loop until SIGTERM (Dramatiq's fork process turns
    it into SystemExit)."""
    import django_dramatiq.setup  # noqa: F401  (django.setup(): settings, apps, the broker)

    relay_loop()
    return 0


class RelayInWorker(dramatiq.Middleware):
    """Declares the relay as a fork of the worker (settings.RELAY_IN_WORKER).

    Dramatiq's CLI asks one worker process for its middleware's forks and starts each once per
    `rundramatiq`, however many processes it runs, after they have booted. Web processes never
    ask."""

    @property
    def forks(self) -> list[Callable[[], int]]:
        from django.conf import settings

        return [relay_forever] if settings.RELAY_IN_WORKER else []
