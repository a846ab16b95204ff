"""The relay: re-sends what the database says is owed and Redis does not hold.

It runs inside every worker dyno as a Dramatiq fork process
(`rundramatiq --fork-function operations.relay:relay_forever`), so it needs no dyno of its own; two
relays at once never send twice (each send is a compare-and-set in the database).
`manage.py requeue_stuck` does one pass of the photo side by hand.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

logger = logging.getLogger("operations.relay")
_sweepers: dict[int, Any] = {}


def broker_sweep(client: Any) -> None:
    """Hand the messages of dead workers (no heartbeat for DRAMATIQ_HEARTBEAT_TIMEOUT_MS) back to
    their queues now.

    Dramatiq does this only in its "maintenance", which runs on a random
    DRAMATIQ_MAINTENANCE_CHANCE per million broker calls and sweeps only the queue of that call:
    after a kill -9 an idle queue waited minutes (the fault suite saw photos still stranded 80 s
    later). Until then those messages still count as live, so the relay would not re-send them
    either. A forced sweep of every queue on each pass bounds the wait to the heartbeat timeout
    plus one relay interval.
    """
    from inventory.relay import INVENTORY_QUEUE
    from photos.services.relay import PHOTO_QUEUE

    sweeper = _sweepers.get(id(client))
    if sweeper is None:
        from django.conf import settings
        from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker

        # A broker object of its own, never consuming, whose every call runs the maintenance.
        sweeper = _sweepers[id(client)] = RedisBroker(
            client=client,
            namespace=settings.DRAMATIQ_NAMESPACE,
            heartbeat_timeout=settings.DRAMATIQ_HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=MAINTENANCE_SCALE,
            middleware=[],
        )
    for queue in (PHOTO_QUEUE, INVENTORY_QUEUE):
        for name in (queue, f"{queue}.DQ"):
            sweeper.do_qsize(name)  # a read-only command: the maintenance runs before it


def relay_once() -> tuple[int, int]:
    """One pass: (photos re-sent, inventory syncs re-sent)."""
    from infra.broker import broker_redis
    from inventory.relay import inventory_relay
    from photos.services.relay import photos_relay, photos_stuck

    client = broker_redis()
    broker_sweep(client)
    photos_sent, _ = photos_relay(photos=photos_stuck(client=client))
    syncs_sent = inventory_relay(client=client)
    return photos_sent, syncs_sent


def relay_forever() -> int:
    """Loop until SIGTERM (Dramatiq's fork process turns it into SystemExit)."""
    import django_dramatiq.setup  # noqa: F401  (django.setup(): settings, apps, the broker)
    from django.conf import settings
    from django.db import close_old_connections

    from aimetrics.rollup import aimetric_rollup

    interval = settings.RELAY_INTERVAL_S
    logger.info("relay started: a pass every %s s", interval)
    while True:
        try:
            photos_sent, syncs_sent = relay_once()
            aimetric_rollup()  # the AI figures' hourly sums: a bounded batch, or nothing to do
            if photos_sent or syncs_sent:
                logger.warning(
                    "relay re-sent %d photo message(s) and %d inventory sync(s)",
                    photos_sent,
                    syncs_sent,
                )
        except Exception:  # Redis or the database down: say so, try again next pass
            logger.exception("relay pass failed")
        finally:
            close_old_connections()
        time.sleep(interval * random.uniform(0.8, 1.2))
